//! This process's own resource use, for the figures a run reports about itself (events per
//! CPU-second in the replay summary and the benchmarks).

/// The kernel's clock ticks per second in `/proc/PID/stat` (`USER_HZ`: 100 on every Linux
/// architecture this product builds for).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds this process (every thread) has used so far; `None` where
/// `/proc/self/stat` cannot be read (not Linux).
pub fn cpu_seconds() -> Option<f64> {
    cpu_seconds_in(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User + system CPU seconds another process (every thread) has used so far, e.g. a
/// broker beside a benchmark; `None` where its `/proc/PID/stat` cannot be read.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    cpu_seconds_in(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time over a span of this process's life: [`CpuSpan::start`], then
/// [`CpuSpan::seconds`] as often as wanted.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpan(Option<f64>);

impl CpuSpan {
    /// Starts the span now.
    pub fn start() -> Self {
        CpuSpan(cpu_seconds())
    }

    /// CPU seconds (all threads) since [`CpuSpan::start`]; `None` where it cannot be read.
    pub fn seconds(&self) -> Option<f64> {
        Some(cpu_seconds()? - self.0?)
    }
}

/// The resident set size of this process in bytes (`VmRSS` in `/proc/self/status`); `None`
/// where that cannot be read.
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_in(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn resident_bytes_in(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// The CPU seconds in one `/proc/PID/stat` line: fields 14 (`utime`) and 15 (`stime`).
fn cpu_seconds_in(stat: &str) -> Option<f64> {
    // Field 2, the command name in parentheses, may hold spaces and parentheses itself; the
    // fields after its last `)` are plain numbers, the first of them field 3.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_another_process_by_its_id() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("SKIP: no /proc on this system");
            return;
        }
        let own = cpu_seconds_of(std::process::id()).expect("this process's /proc/PID/stat");
        assert!(own >= 0.0, "{own}");
        // Process ids stop far below this one (`/proc/sys/kernel/pid_max` is at most 2^22).
        assert_eq!(cpu_seconds_of(u32::MAX), None);
    }

    #[test]
    fn reads_user_and_system_time_after_an_awkward_command_name() {
        // utime 1234 and stime 66 ticks; the name holds a space and a parenthesis.
        let line = "4242 (idgw (x) y) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 66 0 0 20 0 9 0 100 1000000 5000 18446744073709551615";
        assert_eq!(cpu_seconds_in(line), Some(13.0));
        assert_eq!(cpu_seconds_in("4242 (idgw) S 1 2"), None);
        assert_eq!(cpu_seconds_in("no parenthesis"), None);
    }

    #[test]
    fn reads_the_resident_set() {
        let status = "Name:\tidgw\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes_in(status), Some(123_456 * 1024));
        assert_eq!(resident_bytes_in("Name:\tidgw\n"), None);
        if let Some(rss) = resident_bytes() {
            assert!(rss > 0);
        }
    }

    #[test]
    fn counts_this_process_cpu() {
        let span = CpuSpan::start();
        let Some(before) = cpu_seconds() else {
            eprintln!("SKIP: /proc/self/stat is not readable here");
            return;
        };
        // Burn CPU until two 10 ms ticks show; other tests may share the cores, so the
        // wall time this takes is bounded loosely.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.02 && started.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            after = cpu_seconds().expect("readable a moment ago");
        }
        std::hint::black_box(x);
        assert!(after - before >= 0.02, "{before} → {after} in {:?}", started.elapsed());
        assert!(span.seconds().is_some_and(|s| s >= after - before), "{span:?}");
    }
}
