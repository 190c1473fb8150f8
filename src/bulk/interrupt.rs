//! Ctrl-C during an import: stop cleanly between batches.

use std::io;
use std::sync::Arc;

use tokio::sync::Notify;

/// Notified by the first Ctrl-C (SIGINT): the import stops after the batch in flight.
/// A second one exits at once; everything the store acknowledged is stored either way.
/// The handler is installed before this returns.
pub(super) fn on_interrupt() -> io::Result<Arc<Notify>> {
    let stop = Arc::new(Notify::new());
    let notify = stop.clone();
    let mut signals = interrupts()?;
    tokio::spawn(async move {
        if !interrupted(&mut signals).await {
            return;
        }
        notify.notify_one();
        eprintln!("\ninterrupted: finishing the batch in flight (Ctrl-C again to quit now)");
        if interrupted(&mut signals).await {
            std::process::exit(130);
        }
    });
    Ok(stop)
}

#[cfg(unix)]
fn interrupts() -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

#[cfg(unix)]
async fn interrupted(signals: &mut tokio::signal::unix::Signal) -> bool {
    signals.recv().await.is_some()
}

#[cfg(not(unix))]
fn interrupts() -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
async fn interrupted(_: &mut ()) -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}
