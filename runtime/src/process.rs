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
