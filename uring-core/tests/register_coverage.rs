//! Every register op of the bindings has a typed entry point: regenerating the bindings
//! against newer kernel headers makes this test name each new `IORING_REGISTER_*` /
//! `IORING_UNREGISTER_*` code until it has one (or is listed below with the reason it has
//! none here).

use uring_core::sys::{self, REGISTER_OPS};
use uring_core::{Registrar, Resize, Ring};

/// `(code, entry points)`: naming each entry point makes this fail to compile if it goes
/// away or is renamed.
macro_rules! typed {
    ($($code:ident => $($f:path),+;)*) => {
        vec![$((sys::$code, {
            $(let _ = $f;)+
            concat!($(stringify!($f), " "),+)
        })),*]
    };
}

/// Codes of the bindings that are not operations, each with why.
const NOT_OPERATIONS: &[(&str, &str)] = &[
    // The number of codes, for range checks; the kernel refuses it (`EINVAL`).
    ("IORING_REGISTER_LAST", "the count of register ops"),
    // A flag ORed into any code: `fd` is then a registered ring index. The typed entry points
    // go through the ring's own fd; `Registrar::raw` takes it for callers that want it.
    (
        "IORING_REGISTER_USE_REGISTERED_RING",
        "a flag on other codes (Registrar::raw)",
    ),
];

#[test]
fn every_register_op_of_the_bindings_has_a_typed_entry_point() {
    let typed = typed! {
        IORING_REGISTER_BUFFERS => Registrar::register_buffers;
        IORING_UNREGISTER_BUFFERS => Registrar::unregister_buffers;
        IORING_REGISTER_FILES => Registrar::register_files, Registrar::register_files_raw;
        IORING_UNREGISTER_FILES => Registrar::unregister_files;
        IORING_REGISTER_EVENTFD => Registrar::register_eventfd;
        IORING_UNREGISTER_EVENTFD => Registrar::unregister_eventfd;
        IORING_REGISTER_FILES_UPDATE => Registrar::update_files, Registrar::update_files_raw;
        IORING_REGISTER_EVENTFD_ASYNC => Registrar::register_eventfd_async;
        IORING_REGISTER_PROBE => Registrar::probe;
        IORING_REGISTER_PERSONALITY => Registrar::register_personality;
        IORING_UNREGISTER_PERSONALITY => Registrar::unregister_personality;
        IORING_REGISTER_RESTRICTIONS => Registrar::register_restrictions;
        IORING_REGISTER_ENABLE_RINGS => Registrar::enable_rings;
        IORING_REGISTER_FILES2 => Registrar::register_files_tagged, Registrar::register_files_sparse;
        IORING_REGISTER_FILES_UPDATE2 => Registrar::update_files_tagged;
        IORING_REGISTER_BUFFERS2 => Registrar::register_buffers_tagged, Registrar::register_buffers_sparse;
        IORING_REGISTER_BUFFERS_UPDATE => Registrar::update_buffers, Registrar::update_buffers_tagged;
        IORING_REGISTER_IOWQ_AFF => Registrar::register_iowq_aff;
        IORING_UNREGISTER_IOWQ_AFF => Registrar::unregister_iowq_aff;
        IORING_REGISTER_IOWQ_MAX_WORKERS => Registrar::register_iowq_max_workers;
        IORING_REGISTER_RING_FDS => Registrar::register_ring_fd;
        IORING_UNREGISTER_RING_FDS => Registrar::unregister_ring_fd;
        IORING_REGISTER_SYNC_CANCEL => Registrar::cancel_sync;
        IORING_REGISTER_FILE_ALLOC_RANGE => Registrar::register_file_alloc_range;
        IORING_REGISTER_NAPI => Registrar::register_napi, Registrar::napi_add_id, Registrar::napi_del_id;
        IORING_UNREGISTER_NAPI => Registrar::unregister_napi;
        IORING_REGISTER_CLOCK => Registrar::register_clock;
        IORING_REGISTER_CLONE_BUFFERS => Registrar::clone_buffers;
        IORING_REGISTER_SEND_MSG_RING => uring_core::send_msg_ring;
        IORING_REGISTER_ZCRX_IFQ => Registrar::register_zcrx_ifq;
        IORING_REGISTER_RESIZE_RINGS => Ring::resize, Resize::apply_to_halves;
        IORING_REGISTER_MEM_REGION => Registrar::register_wait_args;
        IORING_REGISTER_QUERY => uring_core::query_opcodes, uring_core::query_zcrx, uring_core::query_scq;
        IORING_REGISTER_ZCRX_CTRL => Registrar::zcrx_flush_rq, Registrar::zcrx_export;
        IORING_REGISTER_BPF_FILTER => Registrar::register_bpf_filter, uring_core::register_task_bpf_filter;
        IORING_REGISTER_PBUF_RING => Registrar::register_pbuf_ring;
        IORING_UNREGISTER_PBUF_RING => Registrar::unregister_pbuf_ring;
        IORING_REGISTER_PBUF_STATUS => Registrar::pbuf_status;
    };

    let name_of = |code: u32| {
        REGISTER_OPS
            .iter()
            .find(|&&(c, _)| c == code)
            .map(|&(_, n)| n)
    };
    let mut missing = Vec::new();
    for &(code, name) in REGISTER_OPS.iter() {
        let listed =
            typed.iter().any(|&(c, _)| c == code) || NOT_OPERATIONS.iter().any(|&(n, _)| n == name);
        if !listed {
            missing.push(format!("{name} ({code})"));
        }
    }
    assert!(
        missing.is_empty(),
        "register ops of the bindings with no typed entry point: {}",
        missing.join(", ")
    );

    // Every listed code is one of the bindings', listed once, and the lists do not overlap
    // (a stale entry would hide a code).
    let mut seen = std::collections::HashSet::new();
    for &(code, entry) in &typed {
        let name =
            name_of(code).unwrap_or_else(|| panic!("{entry}: code {code} not in the bindings"));
        assert!(seen.insert(name), "{name} listed twice");
    }
    for &(name, why) in NOT_OPERATIONS {
        assert!(
            REGISTER_OPS.iter().any(|&(_, n)| n == name),
            "{name} ({why}) is no code of the bindings"
        );
        assert!(seen.insert(name), "{name} listed twice");
    }
    assert_eq!(seen.len(), REGISTER_OPS.len());
}
