//! `FabricWorldTestHooks`: what a misbehaving client would send and `FabricWorld` never does,
//! for the project's own end-to-end tests. Compiled only with the cargo feature `itest` (the
//! test harness's build); the addon users ship leaves it out, like `FabricTestRunner`.
//!
//! A test script reaches it by name (`ClassDB.instantiate(&"FabricWorldTestHooks")`), so the
//! script still loads, and says plainly what is missing, on a build without it.

use fabric_core::session_control::{ControlMessage, OwnershipState};
use godot::global::Error;
use godot::prelude::*;

use super::FabricWorld;

/// Test-only messages a `FabricWorld` sends on its session (internal: used by the project's
/// end-to-end test scenes; absent from the addon users ship).
// The attribute repeats the module's gate so the docs build (`cargo xtask docs`), which reads
// the sources, leaves this class out of the reference as the shipped addon does.
#[cfg(feature = "itest")]
#[derive(GodotClass)]
#[class(base = RefCounted, init)]
pub struct FabricWorldTestHooks {
    base: Base<RefCounted>,
}

#[godot_api]
impl FabricWorldTestHooks {
    /// Sends, on `world`'s session, the `ownership` event only a zone may send: entity `id`
    /// granted to avatar `holder`. A zone refuses it and counts it as `forged`. `OK` when sent,
    /// `ERR_UNCONFIGURED` before `world`'s avatar exists, `ERR_INVALID_PARAMETER` for ids out
    /// of range.
    #[func]
    fn send_forged_ownership_grant(
        &self,
        mut world: Gd<FabricWorld>,
        id: i64,
        holder: i64,
    ) -> Error {
        let (Ok(entity), Ok(holder)) = (u32::try_from(id), u32::try_from(holder)) else {
            return Error::ERR_INVALID_PARAMETER;
        };
        let msg = ControlMessage::Ownership {
            entity,
            state: OwnershipState::Granted,
            holder: Some(holder),
            reason: None,
        };
        world.bind_mut().send_control_for_test(&msg)
    }
}
