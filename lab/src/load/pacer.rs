//! The open loop's schedule: request `i` is due at the start of millisecond
//! `floor(i * 1000 / rate)`. A thread releases each millisecond's requests on time (a permit
//! each); tokio's timer would release them up to 1-2 ms late (it rounds to whole milliseconds
//! twice), and that lateness would count as latency of the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The releasing thread and the permits it releases.
#[derive(Debug)]
pub struct Pacer {
    /// One permit per request due; the connection tasks take them.
    pub release: Arc<Semaphore>,
    thread: std::thread::JoinHandle<()>,
}

impl Pacer {
    /// Starts the releasing thread for `tasks` connection tasks, releasing `rate` requests a
    /// second from `start` until `deadline`. After the last tick it gives each task one more
    /// permit, whose request is past the deadline and makes it stop: the requests already
    /// released are all sent first, however far behind the service is (closing the semaphore
    /// instead would drop them, and with them the slowest end of the run).
    pub fn start(rate: f64, start: Instant, deadline: Instant, tasks: usize) -> Self {
        let release = Arc::new(Semaphore::new(0));
        let permits = Arc::clone(&release);
        let thread = std::thread::spawn(move || {
            let mut released = 0u64;
            for tick in 0u64.. {
                let at = start + Duration::from_millis(tick);
                if at >= deadline || permits.is_closed() {
                    break;
                }
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // Requests due by the end of this millisecond: ceil((tick + 1) * rate / 1000).
                let due = ((tick + 1) as f64 * rate / 1000.0).ceil() as u64;
                let add = usize::try_from(due.saturating_sub(released)).unwrap_or(0);
                permits.add_permits(add.min(Semaphore::MAX_PERMITS / 2));
                released = due;
            }
            if !permits.is_closed() {
                permits.add_permits(tasks.min(Semaphore::MAX_PERMITS / 2));
            }
        });
        Self { release, thread }
    }

    /// When request `index` is due, from the start, at `rate` requests a second.
    pub fn due(index: u64, rate: f64) -> Duration {
        Duration::from_millis((index as f64 * 1000.0 / rate.max(f64::MIN_POSITIVE)).floor() as u64)
    }

    /// Stops releasing and waits for the thread.
    pub fn stop(self) {
        self.release.close();
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_due_at_the_start_of_their_millisecond() {
        assert_eq!(Pacer::due(0, 1000.0), Duration::ZERO);
        assert_eq!(Pacer::due(999, 1000.0), Duration::from_millis(999));
        // 2,500/s: requests 0-2 in millisecond 0, 3-4 in millisecond 1.
        assert_eq!(Pacer::due(2, 2500.0), Duration::ZERO);
        assert_eq!(Pacer::due(3, 2500.0), Duration::from_millis(1));
        assert_eq!(Pacer::due(5, 2500.0), Duration::from_millis(2));
        // Half a request a second: one every 2 s.
        assert_eq!(Pacer::due(3, 0.5), Duration::from_millis(6000));
    }

    #[test]
    fn the_schedule_is_released_then_one_stop_permit_per_task() {
        let start = Instant::now();
        let pacer = Pacer::start(1000.0, start, start + Duration::from_millis(20), 3);
        // 20 ms at 1,000/s, then a stop permit for each of the 3 tasks.
        let waited = Instant::now();
        while pacer.release.available_permits() < 23 && waited.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pacer.release.available_permits(), 23);
        pacer.stop();
    }
}
