//! The policy engine (see the policy issue).
