//! Typed io_uring operations that own their buffers (being built; see issue 4).
