//! The v1beta2 API of the k0smotron-rs providers: CRD types, their schemas, and every name,
//! label, annotation and finalizer the controllers use. No I/O lives here.
