//! The eBPF object that ships in this crate (`ebpf/mcnet.bpf.o`, what
//! dependents load) is byte for byte what the sources in `mcnet-ebpf`
//! build. Runs when the object is built from source (the `build-ebpf`
//! feature, which this workspace enables).
//!
//! After changing the kernel programs, refresh the shipped copy with
//! `MCNET_UPDATE_EBPF_OBJECT=1 cargo test -p mcnet-datapath --features build-ebpf --test shipped_object`.

use std::path::Path;

#[test]
fn the_shipped_object_is_what_the_sources_build() {
    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::EBPF_FROM_SOURCE {
        mcnet_core::testing::skip("the eBPF object was not built from source (feature build-ebpf)");
        return;
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("ebpf/mcnet.bpf.o");
    let built = mcnet_datapath::EBPF_OBJECT;
    let on_disk = std::fs::read(&shipped).unwrap_or_default();
    if on_disk == built {
        return;
    }
    if std::env::var_os("MCNET_UPDATE_EBPF_OBJECT").is_some() {
        std::fs::write(&shipped, built).unwrap();
        eprintln!("updated {}", shipped.display());
        return;
    }
    panic!(
        "{} ({} bytes) differs from what the sources build ({} bytes); refresh it with \
         MCNET_UPDATE_EBPF_OBJECT=1 cargo test -p mcnet-datapath --features build-ebpf --test shipped_object",
        shipped.display(),
        on_disk.len(),
        built.len()
    );
}
