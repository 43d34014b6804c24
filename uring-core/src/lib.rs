//! Rings, their memory ordering, entering the kernel and registration (being built; see issue 3).
