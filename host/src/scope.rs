//! Where a guest's state lives: a namespace and a module kind. A binding, a guest call, an AP
//! space, a sweep and a lease each belong to one; passing it as one value keeps the two from
//! being swapped or one of them forgotten.

use std::fmt;

use crate::partition::PartitionId;
use crate::runtime::ModuleKind;

/// A namespace and a module kind, borrowed: what a call is about, passed down by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope<'a> {
    pub namespace: &'a str,
    pub kind: ModuleKind,
}

impl<'a> Scope<'a> {
    pub fn new(namespace: &'a str, kind: ModuleKind) -> Scope<'a> {
        Scope { namespace, kind }
    }

    /// The same scope, owned: a map key.
    pub fn owned(self) -> (String, ModuleKind) {
        (self.namespace.to_string(), self.kind)
    }

    /// One of this scope's AP partitions.
    pub fn partition(self, partition: &str) -> PartitionId {
        PartitionId { namespace: self.namespace.to_string(), kind: self.kind, partition: partition.to_string() }
    }
}

impl PartitionId {
    /// The scope this partition belongs to.
    pub fn scope(&self) -> Scope<'_> {
        Scope::new(&self.namespace, self.kind)
    }
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} in namespace {}", self.kind, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_names_its_partitions_and_reads_as_words() {
        let scope = Scope::new("dev", ModuleKind::Naming);
        let id = scope.partition("G@@svc");
        assert_eq!(id, PartitionId { namespace: "dev".into(), kind: ModuleKind::Naming, partition: "G@@svc".into() });
        assert_eq!(id.scope(), scope);
        assert_eq!(scope.owned(), ("dev".to_string(), ModuleKind::Naming));
        assert_eq!(scope.to_string(), "Naming in namespace dev");
    }
}
