//! Every supervised child in one list, for `fazt workers status`, the admin
//! API and health: each role reports its own rows and problems.

use std::sync::Arc;

use fazt_ipc::msg::ChildStatus;

/// A role that shows in status.
pub trait Reported: Send + Sync {
    /// Its rows.
    fn rows(&self) -> Vec<ChildStatus>;
    /// What is wrong with it now, for health (`[]` when nothing).
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// All roles, in the order their rows show.
#[derive(Clone, Default)]
pub struct Roster(Vec<Arc<dyn Reported>>);

impl Roster {
    /// A roster of these roles.
    pub fn new(roles: Vec<Arc<dyn Reported>>) -> Roster {
        Roster(roles)
    }

    /// Every row.
    pub fn rows(&self) -> Vec<ChildStatus> {
        self.0.iter().flat_map(|r| r.rows()).collect()
    }

    /// Every problem.
    pub fn problems(&self) -> Vec<String> {
        self.0.iter().flat_map(|r| r.problems()).collect()
    }
}
