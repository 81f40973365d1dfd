//! The ABI's type layouts, as abi_stable records them, against a checked-in snapshot.
//!
//! Every type reachable from a root module is listed once: its name, package, size,
//! alignment and kind, then its fields in order (functions with their signatures). The
//! package *version* is left out, so a minor release changes nothing that did not
//! change. `layout/v1_0.txt` is 1.0.0's interface (and `v1_1.txt`, `v1_2.txt` the later minors') and must never change; `layout/current.txt`
//! is this version's, and may only grow by appending. After an intended append, rerun
//! with `FUSEHOST_BLESS_LAYOUT=1` to rewrite the snapshot, and review its diff.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::path::PathBuf;

use fusehost_abi::abi_stable::std_types::UTypeId;
use fusehost_abi::abi_stable::type_layout::{TLData, TLFields, TypeLayout};
use fusehost_abi::abi_stable::StableAbi;

/// The types reachable from a root, in the order a depth-first walk first meets them.
#[derive(Default)]
struct Walk {
    seen: HashSet<UTypeId>,
    names: HashMap<String, usize>,
    blocks: Vec<String>,
}

impl Walk {
    fn describe(&mut self, layout: &'static TypeLayout) {
        if !self.seen.insert(layout.get_utypeid()) {
            return;
        }
        // Instances of one generic type print alike: number the later ones.
        let name = format!("{} ({})", layout.full_type(), layout.package());
        let count = self.names.entry(name.clone()).or_insert(0);
        *count += 1;
        let header = if *count == 1 { name } else { format!("{name} #{count}") };
        let mut text = format!("{header}\n  size {} align {}\n", layout.size(), layout.alignment());
        let mut nested: Vec<&'static TypeLayout> = Vec::new();
        let mut fields = |text: &mut String, fields: TLFields, what: &str| {
            for (index, field) in fields.iter().enumerate() {
                let _ = write!(text, "  {what} {index} {}: {}", field.name(), field.full_type());
                for function in field.function_range().iter() {
                    let _ = write!(text, " = {function}");
                    nested.extend(function.param_type_layouts.iter().map(|param| param()));
                    nested.extend(function.return_type_layout().map(|returns| returns()));
                }
                text.push('\n');
                nested.push(field.layout());
            }
        };
        match layout.data() {
            TLData::Primitive(primitive) => {
                let _ = writeln!(text, "  primitive {primitive:?}");
            }
            TLData::Opaque => text.push_str("  opaque\n"),
            TLData::Struct { fields: list } => fields(&mut text, list, "field"),
            TLData::Union { fields: list } => fields(&mut text, list, "union field"),
            TLData::Enum(enum_) => {
                let _ = writeln!(text, "  enum {:?}", enum_.variant_names);
                fields(&mut text, enum_.fields, "variant field");
            }
            TLData::PrefixType(prefix) => {
                let _ = writeln!(text, "  prefix: first suffix field {}", prefix.first_suffix_field);
                fields(&mut text, prefix.fields, "field");
            }
        }
        fields(&mut text, layout.phantom_fields(), "phantom");
        self.blocks.push(text);
        for layout in nested {
            self.describe(layout);
        }
    }
}

fn snapshot(root: &'static TypeLayout) -> String {
    let mut walk = Walk::default();
    walk.describe(root);
    walk.blocks.join("\n")
}

fn check(name: &str, root: &'static TypeLayout) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("layout").join(name);
    let now = snapshot(root);
    if std::env::var_os("FUSEHOST_BLESS_LAYOUT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if before == now {
        return;
    }
    let diff = similar::TextDiff::from_lines(&before, &now).unified_diff().header("snapshot", "now").to_string();
    panic!(
        "the ABI's layout differs from {}:\n{diff}\nOnly appends are allowed within a major (see fusehost-abi's \
         docs); if this is one, rerun with FUSEHOST_BLESS_LAYOUT=1 and commit the new snapshot",
        path.display()
    );
}

#[test]
fn the_released_1_0_interface_never_changes() {
    check("v1_0.txt", <fusehost_abi::v1_0::PluginModule_Ref as StableAbi>::LAYOUT);
}

#[test]
fn the_released_1_1_interface_never_changes() {
    check("v1_1.txt", <fusehost_abi::v1_1::PluginModule_Ref as StableAbi>::LAYOUT);
}

#[test]
fn the_released_1_2_interface_never_changes() {
    check("v1_2.txt", <fusehost_abi::v1_2::PluginModule_Ref as StableAbi>::LAYOUT);
}

#[test]
fn the_current_interface_changes_only_by_review() {
    check("current.txt", <fusehost_abi::PluginModule_Ref as StableAbi>::LAYOUT);
}

#[test]
fn the_current_interface_only_appends_to_1_0() {
    only_appends_to(<fusehost_abi::v1_0::PluginModule_Ref as StableAbi>::LAYOUT);
}

#[test]
fn the_current_interface_only_appends_to_1_1() {
    only_appends_to(<fusehost_abi::v1_1::PluginModule_Ref as StableAbi>::LAYOUT);
}

#[test]
fn the_current_interface_only_appends_to_1_2() {
    only_appends_to(<fusehost_abi::v1_2::PluginModule_Ref as StableAbi>::LAYOUT);
}

/// Within a major, the current snapshot keeps every line of an older minor's about
/// each type it had, in order: fields are appended, never changed, removed or reordered.
fn only_appends_to(released: &'static TypeLayout) {
    let old = snapshot(released);
    let new = snapshot(<fusehost_abi::PluginModule_Ref as StableAbi>::LAYOUT);
    let blocks = |text: &str| -> BTreeMap<String, Vec<String>> {
        text.split("\n\n")
            .filter_map(|block| {
                let mut lines = block.lines().map(str::to_owned);
                Some((lines.next()?, lines.collect()))
            })
            .collect()
    };
    let (old, new) = (blocks(&old), blocks(&new));
    // The ABI's own types; abi_stable's generic ones print alike and are numbered in
    // walk order, which appending may shift.
    let own = old.iter().filter(|(type_name, _)| type_name.ends_with("(fusehost-abi)"));
    let mut checked = 0;
    for (type_name, old_lines) in own {
        checked += 1;
        let new_lines = new.get(type_name).unwrap_or_else(|| panic!("{type_name} is gone from the current ABI"));
        let old_fields: Vec<_> = old_lines.iter().filter(|line| line.contains("field ")).collect();
        let new_fields: Vec<_> = new_lines.iter().filter(|line| line.contains("field ")).collect();
        assert!(
            new_fields.len() >= old_fields.len() && new_fields[..old_fields.len()] == old_fields[..],
            "{type_name}: the released fields are not a prefix of the current ones:\n{old_fields:#?}\n{new_fields:#?}"
        );
        if !old_lines.iter().any(|line| line.starts_with("  prefix")) {
            assert_eq!(old_lines, new_lines, "{type_name} is not a prefix type: it cannot grow");
        }
    }
    assert!(checked >= 20, "only {checked} of the ABI's types were compared");
}
