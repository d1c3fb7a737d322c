//! Settings of the agent's whole process, made once at start before the
//! async runtime and the agent are.

/// Stops the kernel from backing this process's memory with transparent
/// huge pages. The allocator (mimalloc, chosen for the simulator's churn)
/// asks for huge pages on its arenas, so on a host where THP is enabled
/// (`always`, or `madvise`, a common default) every 2 MiB region the agent
/// touches becomes resident whole: an idle agent holding about 3 MB held
/// 18 MB more in huge pages (docs/benchmarks.md, "Runtime"). An agent
/// gains nothing from huge pages; the simulator, which does not call this,
/// keeps them. Pages already faulted in are not split, so call this first.
pub fn disable_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument and the
        // rest zero; it changes only this process's THP flag.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The open files limit (`RLIMIT_NOFILE`) before and after
/// [`raise_open_files_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now: what the process may open.
    pub soft: u64,
    /// The hard limit: the most the soft limit may be raised to.
    pub hard: u64,
}

/// Raises this process's soft open files limit to its hard limit: many
/// hosts start services with a soft limit of 1,024 while allowing far
/// more, and running out turns every file the agent writes into an error.
/// The hard limit is the administrator's (`LimitNOFILE=` in the systemd
/// unit); an unlimited one is taken as the kernel's `fs.nr_open`.
pub fn raise_open_files_limit() -> std::io::Result<OpenFiles> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the struct it is given,
        // which lives for the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let soft_before = limit.rlim_cur;
        let hard = if limit.rlim_max == libc::RLIM_INFINITY {
            kernel_open_files_max().unwrap_or(soft_before)
        } else {
            limit.rlim_max
        };
        if hard > soft_before {
            let raised = libc::rlimit {
                rlim_cur: hard,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads one rlimit from the struct it is
            // given, which lives for the call.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(OpenFiles {
            soft_before,
            soft: hard.max(soft_before),
            hard: limit.rlim_max,
        })
    }
    #[cfg(not(unix))]
    Err(std::io::Error::other("open files limits are Unix's"))
}

/// This process's soft open files limit now, if it can be read.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise_open_files_limit`.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return Some(limit.rlim_cur);
        }
    }
    None
}

/// The most files any process may open, per the kernel (`fs.nr_open`).
fn kernel_open_files_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}
