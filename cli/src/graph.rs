//! `squall graph`: the topology as Graphviz DOT, e.g. `squall graph t.yaml | dot -Tsvg`.

use std::fmt::Write as _;
use std::path::PathBuf;

use squall_model::{GroupingSpec, InputSpec, Plan, Role, DEFAULT_STREAM};

use crate::validate;

#[derive(clap::Args)]
pub struct GraphArgs {
    /// The Topology manifest (YAML).
    file: PathBuf,
}

pub fn run(args: GraphArgs, limits: &squall_model::Limits) -> anyhow::Result<()> {
    let plan = validate::load(&args.file, &[], limits)?;
    print!("{}", dot(&plan));
    Ok(())
}

/// Renders the graph. Nodes and edges follow the manifest's order, so the output is stable
/// and diffs of it are meaningful.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored deliberately.
    let _ = writeln!(out, "digraph {} {{", quote(&plan.name));
    out.push_str(
        "  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let components = plan.spec.spouts.iter().chain(&plan.spec.bolts);
    for spec in components {
        let Some(c) = plan.component(&spec.name) else {
            continue;
        };
        let shape = match c.role {
            Role::Spout => "shape=invhouse, style=filled, fillcolor=\"#dbeafe\"",
            _ => "shape=box, style=rounded",
        };
        let tasks = if c.tasks.len() as u32 == c.parallelism {
            String::new()
        } else {
            format!(", {} tasks", c.tasks.len())
        };
        let label = format!("{}\n{} ×{}{tasks}", c.name, c.kind, c.parallelism);
        let _ = writeln!(out, "  {} [{shape}, label={}];", quote(&c.name), quote(&label));
    }
    for bolt in &plan.spec.bolts {
        for input in &bolt.inputs {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                quote(&input.from),
                quote(&bolt.name),
                quote(&edge_label(input))
            );
        }
    }
    out.push_str("}\n");
    out
}

fn edge_label(input: &InputSpec) -> String {
    let grouping = grouping(&input.grouping);
    if input.stream == DEFAULT_STREAM {
        grouping
    } else {
        format!("{}: {grouping}", input.stream)
    }
}

fn grouping(g: &GroupingSpec) -> String {
    if g.fields.is_empty() {
        g.kind.as_str().to_owned()
    } else {
        format!("{}({})", g.kind.as_str(), g.fields.join(", "))
    }
}

/// A DOT double-quoted string; newlines become DOT's centred line breaks.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for ch in s.chars() {
        match ch {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}
