//! TUN devices: open `/dev/net/tun`, attach it to a named layer-3 interface without packet
//! information headers (`IFF_TUN | IFF_NO_PI`), so each `read` is one IP packet.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::Error;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens a new TUN interface called `name` in the calling thread's network namespace and
/// returns its file descriptor, non-blocking. The interface disappears when the descriptor
/// is closed.
pub fn open(name: &str) -> Result<OwnedFd, Error> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(Error::Config(format!(
            "interface name `{name}` must have 1..{} bytes",
            libc::IFNAMSIZ
        )));
    }
    // SAFETY: open(2) with a NUL-terminated literal path.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if raw < 0 {
        return Err(Error::last_os("opening /dev/net/tun"));
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out (40 bytes).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(Error::last_os(format!("TUNSETIFF {name}")));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ifreq_has_the_kernel_size() {
        assert_eq!(
            std::mem::size_of::<super::IfReq>(),
            40,
            "struct ifreq is 40 bytes"
        );
    }

    #[test]
    fn overlong_names_are_refused() {
        assert!(
            super::open("a-name-that-is-too-long").is_err(),
            "16+ bytes refused"
        );
    }
}
