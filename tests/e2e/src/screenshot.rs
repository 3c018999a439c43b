//! Reading a screenshot of the visual client: decode the PNG Godot saved and count the pixels
//! of given colours.

use std::path::Path;

/// Why a screenshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotError {
    /// The file could not be read.
    #[error("reading the screenshot: {0}")]
    Io(#[from] std::io::Error),
    /// Not a PNG, or a broken one.
    #[error("decoding the screenshot: {0}")]
    Decode(#[from] png::DecodingError),
    /// A PNG of a kind Godot does not write for a viewport (8-bit RGB or RGBA).
    #[error("unexpected PNG format: {0:?} at {1:?} bits")]
    Format(png::ColorType, png::BitDepth),
}

/// An 8-bit RGB picture.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    rgb: Vec<[u8; 3]>,
}

/// A rectangle of pixels (`x`, `y`, `w`, `h`).
pub type Rect = (u32, u32, u32, u32);

impl Picture {
    /// Decodes the PNG file at `path`.
    pub fn load(path: &Path) -> Result<Self, ScreenshotError> {
        Self::decode(&std::fs::read(path)?)
    }

    /// Decodes PNG `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, ScreenshotError> {
        let mut reader = png::Decoder::new(bytes).read_info()?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf)?;
        let channels = match (info.color_type, info.bit_depth) {
            (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
            (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
            (c, b) => return Err(ScreenshotError::Format(c, b)),
        };
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Ok(Self {
            width: info.width,
            height: info.height,
            rgb,
        })
    }

    /// How many pixels outside `skip` are within `tolerance` of `colour` on every channel.
    pub fn count(&self, colour: [u8; 3], tolerance: u8, skip: Rect) -> usize {
        let (sx, sy, sw, sh) = skip;
        self.rgb
            .iter()
            .enumerate()
            .filter(|&(i, p)| {
                let (x, y) = (i as u32 % self.width, i as u32 / self.width);
                let skipped = (sx..sx + sw).contains(&x) && (sy..sy + sh).contains(&y);
                !skipped && (0..3).all(|k| p[k].abs_diff(colour[k]) <= tolerance)
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, pixels: &[[u8; 3]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .unwrap()
            .write_image_data(pixels.concat().as_slice())
            .unwrap();
        out
    }

    #[test]
    fn counts_colours_outside_the_skipped_rectangle() {
        let red = [235, 64, 52];
        let bytes = png(2, 2, &[red, [0, 0, 0], [230, 60, 50], red]);
        let p = Picture::decode(&bytes).unwrap();
        assert_eq!((p.width, p.height), (2, 2));
        assert_eq!(p.count(red, 0, (0, 0, 0, 0)), 2);
        assert_eq!(p.count(red, 5, (0, 0, 0, 0)), 3);
        assert_eq!(p.count(red, 5, (0, 0, 1, 1)), 2);
    }

    #[test]
    fn bad_bytes_are_a_typed_error() {
        assert!(matches!(
            Picture::decode(b"not a png"),
            Err(ScreenshotError::Decode(_))
        ));
        let mut bytes = png(2, 2, &[[1, 2, 3]; 4]);
        bytes.truncate(bytes.len() - 20);
        assert!(Picture::decode(&bytes).is_err());
    }
}
