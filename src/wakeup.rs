//! Waiting for a wake-up or a timeout: how the background loops (the session expirer,
//! the retention pass, the idle-listener sweep) sleep between rounds and hear that they
//! should stop.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

/// Waits up to `wait` for a wake-up, taking any others already queued with it; `false`
/// once every sender is gone (the loop's signal to stop).
pub async fn woken_or_timed_out(wake: &mut UnboundedReceiver<()>, wait: Duration) -> bool {
    match tokio::time::timeout(wait, wake.recv()).await {
        Ok(None) => false,
        Ok(Some(())) | Err(_) => {
            while wake.try_recv().is_ok() {}
            true
        }
    }
}
