//! `squall kinds`: the built-in component kinds, for writing manifests.

use squall_components::Builtins;
use squall_model::{Catalog, Config, Role};

use crate::table::Grid;

pub fn run() -> anyhow::Result<()> {
    let builtins = Builtins;
    let mut grid = Grid::new(&["KIND", "ROLE", "DEFAULT OUTPUTS"], 0);
    for kind in builtins.kinds() {
        // Described with an empty config: the defaults a manifest gets when it sets nothing.
        let (role, outputs) = match builtins.describe(&kind, &Config::new()) {
            Some(Ok(info)) => {
                let role = match info.role {
                    Some(Role::Spout) => "spout",
                    Some(Role::Bolt) => "bolt",
                    Some(Role::Acker) => "acker",
                    None => "spout or bolt",
                };
                let outputs = if info.outputs.is_empty() {
                    "none (declare in outputs)".to_owned()
                } else {
                    info.outputs
                        .iter()
                        .map(|s| format!("{}: [{}]", s.stream, s.fields.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                (role.to_owned(), outputs)
            }
            Some(Err(msg)) => ("?".to_owned(), format!("needs config: {msg}")),
            None => ("?".to_owned(), String::new()),
        };
        grid.row(vec![kind, role, outputs]);
    }
    print!("{}", grid.render());
    Ok(())
}
