//! Loads the embedded kernel programs into the running kernel. Needs root
//! (CI runs as root); skipped with a message otherwise.

#[test]
fn kernel_accepts_the_programs() {
    if cfg!(mcnet_ebpf_stub) {
        eprintln!("skipped: built with MCNET_EBPF_STUB");
        return;
    }
    if !mcnet_datapath::is_root() {
        eprintln!("skipped: loading eBPF needs root");
        return;
    }
    let dp = mcnet_datapath::Datapath::load().expect("the verifier accepts both TC programs");
    // Nothing is attached yet, so every counter is zero.
    let c = dp.counters().expect("the counter map is readable");
    assert_eq!(c.by_reason.len(), mcnet_ebpf_common::REASON_COUNT as usize);
    assert!(c.by_reason.values().all(|&(p, b)| p == 0 && b == 0));
}
