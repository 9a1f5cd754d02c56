//! Cooperative shutdown: one broadcast tells every task to stop; each stops between whole units of
//! work (a connection between commands, the node between steps).

use tokio::sync::watch;

/// Sends the stop signal to every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Listens for the stop signal. Cheap to clone; one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A linked trigger and listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every listener to stop. Idempotent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// A new listener on this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether the stop signal has been sent.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the stop signal is sent (or the trigger is dropped, which means the same).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone: nobody can keep us running, so stop too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
