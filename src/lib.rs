//! Unpublished root package: owns examples/, tests/ and benches/.
