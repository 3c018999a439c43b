//! The class reference of the docs site, generated from the Rust sources of `fabric-godot`:
//! the same `///` comments gdext registers for the editor's F1 help (`register-docs`), read
//! with `syn`, so the site and the editor never drift apart.
//!
//! A class is a struct with `#[derive(GodotClass)]`; its properties are the fields with
//! `#[var]` or `#[export]`; its methods, signals and constants come from `#[godot_api]` impl
//! blocks (`#[func]`, `#[signal]`, `#[constant]`). Test-only classes (under `itests`, or
//! behind `#[cfg(feature = "itest")]`) are left out.
//!
//! One class is written inside a `macro_rules!` that `fabric_net::server_limits!` calls with
//! the list of server limits (`FabricNetLimits`): its name, base and description are read from
//! the macro's body, its properties from that list ([`fabric_net::limits::SETTINGS`]), which
//! is also what gdext registers for the editor.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use quote::ToTokens as _;
use syn::{Attribute, Fields, FnArg, ImplItem, Item, Pat, ReturnType, Type};

/// One documented member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its signature as GDScript would write it.
    pub signature: String,
    /// Its description (Markdown).
    pub doc: String,
}

/// One class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Class {
    /// Class name.
    pub name: String,
    /// The Godot class it extends.
    pub base: String,
    /// Description (Markdown).
    pub doc: String,
    /// Source file, relative to the repository.
    pub file: String,
    /// `#[var]` / `#[export]` fields.
    pub properties: Vec<Member>,
    /// `#[func]` methods.
    pub methods: Vec<Member>,
    /// `#[signal]`s.
    pub signals: Vec<Member>,
    /// `#[constant]`s.
    pub constants: Vec<Member>,
}

fn has_attr(attrs: &[Attribute], name: &str) -> bool {
    attrs.iter().any(|a| a.path().is_ident(name))
}

fn attr_text(attrs: &[Attribute], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident(name))
        .map(|a| a.meta.to_token_stream().to_string())
}

fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.to_token_stream().to_string().contains("itest"))
}

/// The `///` lines of `attrs`, joined (one leading space of each line dropped).
fn doc(attrs: &[Attribute]) -> String {
    let mut out = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            let line = s.value();
            out.push(line.strip_prefix(' ').unwrap_or(&line).to_owned());
        }
    }
    out.join("\n").trim().to_owned()
}

/// A Rust type as a GDScript user reads it.
pub fn godot_type(ty: &str) -> String {
    let t: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = |prefix: &str| {
        t.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix('>'))
            .map(godot_type)
    };
    if let Some(i) = inner("Option<") {
        return i;
    }
    if let Some(i) = inner("Gd<") {
        return i;
    }
    if let Some(i) = inner("Array<") {
        return format!("Array[{i}]");
    }
    match t.as_str() {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => "int",
        "f32" | "f64" | "real" => "float",
        "bool" => "bool",
        "GString" | "String" | "&str" | "&GString" => "String",
        "StringName" | "&StringName" => "StringName",
        "VarDictionary" | "Dictionary" => "Dictionary",
        "VariantArray" | "VarArray" => "Array",
        "()" => "void",
        other => return other.trim_start_matches('&').to_owned(),
    }
    .to_owned()
}

fn type_text(ty: &Type) -> String {
    godot_type(&ty.to_token_stream().to_string())
}

/// `name(a: int, b: String)` and its return type, receivers left out.
fn signature(f: &syn::Signature, with_return: bool) -> String {
    let args: Vec<String> = f
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Receiver(_) => None,
            FnArg::Typed(p) => {
                let name = match &*p.pat {
                    Pat::Ident(i) => i.ident.to_string(),
                    other => other.to_token_stream().to_string(),
                };
                // `this: Gd<Self>` / `gd_self` receivers are not arguments.
                (name != "this")
                    .then(|| format!("{}: {}", name.trim_start_matches('_'), type_text(&p.ty)))
            }
        })
        .collect();
    let ret = match &f.output {
        ReturnType::Default => "void".to_owned(),
        ReturnType::Type(_, ty) => type_text(ty),
    };
    if with_return {
        format!("{}({}) -> {ret}", f.ident, args.join(", "))
    } else {
        format!("{}({})", f.ident, args.join(", "))
    }
}

fn base_of(class_attr: &str) -> String {
    // `class (base = Node , tool)` -> `Node`
    class_attr
        .split("base")
        .nth(1)
        .and_then(|r| r.trim_start().strip_prefix('='))
        .map(|r| {
            r.trim()
                .split(|c: char| c == ',' || c == ')' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_else(|| "RefCounted".to_owned())
}

/// Adds what `source` (the text of `file`) declares to `classes`.
pub fn scan(source: &str, file: &str, classes: &mut Vec<Class>) -> anyhow::Result<()> {
    let ast = syn::parse_file(source).with_context(|| format!("parsing {file}"))?;
    scan_items(&ast.items, file, classes);
    Ok(())
}

fn class_mut<'a>(classes: &'a mut Vec<Class>, name: &str) -> &'a mut Class {
    if let Some(i) = classes.iter().position(|c| c.name == name) {
        return &mut classes[i];
    }
    classes.push(Class {
        name: name.to_owned(),
        ..Class::default()
    });
    classes.last_mut().expect("just pushed")
}

/// The doc, `#[class]` attribute and name of a class declared first in a `macro_rules!` body.
fn macro_class(m: &syn::ItemMacro) -> Option<(String, String, String)> {
    if !m.mac.path.is_ident("macro_rules") {
        return None;
    }
    // `(pattern) => { body }`: the body is the second group.
    let body = m.mac.tokens.clone().into_iter().find_map(|t| match t {
        proc_macro2::TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace => {
            Some(g.stream())
        }
        _ => None,
    })?;
    let head = |input: syn::parse::ParseStream| {
        let attrs = input.call(Attribute::parse_outer)?;
        input.parse::<syn::Token![pub]>()?;
        input.parse::<syn::Token![struct]>()?;
        let name: syn::Ident = input.parse()?;
        input.parse::<proc_macro2::TokenStream>()?;
        Ok((attrs, name))
    };
    let (attrs, name) = syn::parse::Parser::parse2(head, body).ok()?;
    attr_text(&attrs, "derive")
        .is_some_and(|d| d.contains("GodotClass"))
        .then(|| {
            (
                doc(&attrs),
                attr_text(&attrs, "class").unwrap_or_default(),
                name.to_string(),
            )
        })
}

fn scan_items(items: &[Item], file: &str, classes: &mut Vec<Class>) {
    // Classes written in a `macro_rules!`, by macro name, for the list macro that calls it.
    let mut in_macros = std::collections::HashMap::new();
    for item in items {
        if let Item::Macro(m) = item
            && let (Some(name), Some(class)) = (&m.ident, macro_class(m))
        {
            in_macros.insert(name.to_string(), class);
        }
    }
    for item in items {
        match item {
            Item::Macro(m)
                if m.mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "server_limits") =>
            {
                let called = m.mac.tokens.to_string();
                let Some((class_doc, class_attr, name)) = in_macros.get(called.trim()) else {
                    continue;
                };
                let c = class_mut(classes, name);
                c.base = base_of(class_attr);
                c.doc = class_doc.clone();
                c.file = file.to_owned();
                for s in fabric_net::limits::SETTINGS {
                    c.properties.push(Member {
                        name: s.name.to_owned(),
                        signature: format!("{}: int", s.name),
                        doc: format!("{} Default: {}.", s.doc(), s.default_text()),
                    });
                }
            }
            Item::Struct(s)
                if !is_test_only(&s.attrs)
                    && attr_text(&s.attrs, "derive").is_some_and(|d| d.contains("GodotClass")) =>
            {
                let c = class_mut(classes, &s.ident.to_string());
                c.base = base_of(&attr_text(&s.attrs, "class").unwrap_or_default());
                c.doc = doc(&s.attrs);
                c.file = file.to_owned();
                if let Fields::Named(fields) = &s.fields {
                    for f in &fields.named {
                        let var = attr_text(&f.attrs, "var");
                        if var.is_none() && !has_attr(&f.attrs, "export") {
                            continue;
                        }
                        let read_only = var.is_some_and(|v| v.contains("no_set"));
                        let name = f
                            .ident
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        c.properties.push(Member {
                            signature: format!(
                                "{name}: {}{}",
                                type_text(&f.ty),
                                if read_only { " (read-only)" } else { "" }
                            ),
                            name,
                            doc: doc(&f.attrs),
                        });
                    }
                }
            }
            Item::Impl(imp) if has_attr(&imp.attrs, "godot_api") && imp.trait_.is_none() => {
                let Type::Path(p) = &*imp.self_ty else {
                    continue;
                };
                let Some(name) = p.path.segments.last().map(|s| s.ident.to_string()) else {
                    continue;
                };
                let c = class_mut(classes, &name);
                for it in &imp.items {
                    match it {
                        ImplItem::Fn(f) if has_attr(&f.attrs, "func") => c.methods.push(Member {
                            name: f.sig.ident.to_string(),
                            signature: signature(&f.sig, true),
                            doc: doc(&f.attrs),
                        }),
                        ImplItem::Fn(f) if has_attr(&f.attrs, "signal") => c.signals.push(Member {
                            name: f.sig.ident.to_string(),
                            signature: signature(&f.sig, false),
                            doc: doc(&f.attrs),
                        }),
                        // `#[signal] fn name(...);` has no body: syn keeps it verbatim.
                        ImplItem::Verbatim(tokens) => {
                            if let Ok(f) = syn::parse2::<syn::ForeignItemFn>(tokens.clone())
                                && has_attr(&f.attrs, "signal")
                            {
                                c.signals.push(Member {
                                    name: f.sig.ident.to_string(),
                                    signature: signature(&f.sig, false),
                                    doc: doc(&f.attrs),
                                });
                            }
                        }
                        ImplItem::Const(k) if has_attr(&k.attrs, "constant") => {
                            c.constants.push(Member {
                                name: k.ident.to_string(),
                                signature: format!(
                                    "{} = {}",
                                    k.ident,
                                    k.expr.to_token_stream().to_string().replace(' ', "")
                                ),
                                doc: doc(&k.attrs),
                            });
                        }
                        _ => {}
                    }
                }
            }
            Item::Mod(m) if !is_test_only(&m.attrs) => {
                if let Some((_, items)) = &m.content {
                    scan_items(items, file, classes);
                }
            }
            _ => {}
        }
    }
}

/// Every class declared under `src` (recursively), test-only folders left out, by name.
pub fn classes(src: &Path, repo: &Path) -> anyhow::Result<Vec<Class>> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    files.sort();
    let mut classes = Vec::new();
    for f in files {
        let rel = f.strip_prefix(repo).unwrap_or(&f).display().to_string();
        if rel.contains("itests") || rel.ends_with("test_runner.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {rel}"))?;
        scan(&text, &rel, &mut classes)?;
    }
    // Impl blocks of types that are not classes (a helper with #[godot_api]) are dropped.
    classes.retain(|c| !c.file.is_empty());
    classes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(classes)
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Godot's doc-comment markup as Markdown: `[codeblock]` fences, `[code]`, and references to
/// members and classes as code.
fn bbcode_to_markdown(text: &str) -> String {
    let mut out = text
        .replace("[codeblock]", "```gdscript")
        .replace("[/codeblock]", "```")
        .replace("[code]", "`")
        .replace("[/code]", "`");
    for (tag, suffix) in [
        ("method", "()"),
        ("signal", ""),
        ("member", ""),
        ("constant", ""),
    ] {
        let open = format!("[{tag} ");
        while let Some(start) = out.find(&open) {
            let Some(len) = out[start..].find(']') else {
                break;
            };
            let name = out[start + open.len()..start + len].to_owned();
            out.replace_range(start..=start + len, &format!("`{name}{suffix}`"));
        }
    }
    out
}

/// A GDScript class of the addon (`class_name`), documented with `##` comments: the class
/// text after `extends`, and the public signals, constants, variables and functions each
/// preceded by its comment block. `None` for a script without `class_name`.
pub fn gdscript_class(text: &str, file: &str) -> Option<Class> {
    let mut class = Class {
        file: file.to_owned(),
        ..Class::default()
    };
    let mut pending: Vec<String> = Vec::new();
    let mut in_class_doc = false;
    for line in text.lines() {
        if let Some(doc) = line.strip_prefix("##") {
            let doc = doc.strip_prefix(' ').unwrap_or(doc).to_owned();
            if in_class_doc {
                class.doc.push_str(&doc);
                class.doc.push('\n');
            } else {
                pending.push(doc);
            }
            continue;
        }
        in_class_doc = false;
        let doc = bbcode_to_markdown(pending.join("\n").trim());
        pending.clear();
        if let Some(name) = line.strip_prefix("class_name ") {
            class.name = name.trim().to_owned();
        } else if let Some(base) = line.strip_prefix("extends ") {
            class.base = base.trim().to_owned();
            in_class_doc = true;
        } else if let Some(rest) = line.strip_prefix("signal ") {
            let name = rest.split('(').next().unwrap_or(rest).trim().to_owned();
            class.signals.push(Member {
                name,
                signature: rest.trim().to_owned(),
                doc,
            });
        } else if let Some(rest) = line.strip_prefix("func ") {
            let name = rest.split('(').next().unwrap_or(rest).trim().to_owned();
            if !name.starts_with('_') {
                let signature = rest.trim_end_matches(':').trim().to_owned();
                class.methods.push(Member {
                    name,
                    signature,
                    doc,
                });
            }
        } else if let Some(rest) = line
            .strip_prefix("@export var ")
            .or_else(|| line.strip_prefix("var "))
        {
            let name = rest
                .split([':', ' ', '='])
                .next()
                .unwrap_or(rest)
                .to_owned();
            if !name.starts_with('_') {
                class.properties.push(Member {
                    name,
                    signature: rest.trim().to_owned(),
                    doc,
                });
            }
        } else if let Some(rest) = line.strip_prefix("const ") {
            let name = rest
                .split([':', ' ', '='])
                .next()
                .unwrap_or(rest)
                .to_owned();
            if !name.starts_with('_') {
                let signature = rest.split(" = [").next().unwrap_or(rest).trim().to_owned();
                class.constants.push(Member {
                    name,
                    signature,
                    doc,
                });
            }
        }
    }
    class.doc = bbcode_to_markdown(class.doc.trim());
    (!class.name.is_empty()).then_some(class)
}

/// The Markdown page of one class. Members without a description are an error: the editor
/// would show them empty too.
pub fn page(c: &Class) -> anyhow::Result<String> {
    let mut missing = Vec::new();
    let mut s = String::new();
    writeln!(s, "# {}\n", c.name)?;
    writeln!(s, "*Inherits:* `{}` · *source:* `{}`\n", c.base, c.file)?;
    if c.doc.is_empty() {
        missing.push(c.name.clone());
    }
    writeln!(s, "{}\n", c.doc)?;
    for (title, members) in [
        ("Properties", &c.properties),
        ("Methods", &c.methods),
        ("Signals", &c.signals),
        ("Constants", &c.constants),
    ] {
        if members.is_empty() {
            continue;
        }
        writeln!(s, "## {title}\n")?;
        for m in members {
            if m.doc.is_empty() {
                missing.push(format!("{}.{}", c.name, m.name));
            }
            writeln!(s, "### `{}`\n\n{}\n", m.signature, m.doc)?;
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "undocumented in the class reference (add /// comments): {}",
        missing.join(", ")
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"
/// A zone.
///
/// More text.
#[derive(GodotClass)]
#[class(base = Node, init)]
pub struct Zone {
    base: Base<Node>,
    /// Ticks per second.
    #[export]
    tick_hz: i32,
    /// The state.
    #[var(no_set, pub)]
    state: GString,
    hidden: u32,
}

#[godot_api]
impl Zone {
    /// Idle.
    #[constant]
    pub const STATE_IDLE: i32 = 0;
    /// A session opened.
    #[signal]
    fn session_opened(session: i64);
    /// Starts serving.
    #[func]
    fn start(&mut self, port: i64, name: GString) -> bool { true }
    fn private_helper(&self) {}
    /// Stats.
    #[func]
    fn get_stats(&self) -> VarDictionary { todo!() }
}

#[cfg(feature = "itest")]
#[derive(GodotClass)]
#[class(base = Node)]
pub struct TestOnly {}
"#;

    #[test]
    fn a_class_is_read_with_its_documented_members() {
        let mut classes = Vec::new();
        scan(SOURCE, "src/zone.rs", &mut classes).unwrap();
        assert_eq!(classes.len(), 1, "the itest class is left out: {classes:?}");
        let c = &classes[0];
        assert_eq!((c.name.as_str(), c.base.as_str()), ("Zone", "Node"));
        assert_eq!(c.doc, "A zone.\n\nMore text.");
        let props: Vec<_> = c.properties.iter().map(|m| m.signature.as_str()).collect();
        assert_eq!(props, ["tick_hz: int", "state: String (read-only)"]);
        let methods: Vec<_> = c.methods.iter().map(|m| m.signature.as_str()).collect();
        assert_eq!(
            methods,
            [
                "start(port: int, name: String) -> bool",
                "get_stats() -> Dictionary"
            ]
        );
        assert_eq!(c.signals[0].signature, "session_opened(session: int)");
        assert_eq!(c.constants[0].signature, "STATE_IDLE = 0");
        let md = page(c).unwrap();
        assert!(md.contains("### `start(port: int, name: String) -> bool`\n\nStarts serving."));
    }

    #[test]
    fn an_undocumented_member_fails_the_build() {
        let mut classes = Vec::new();
        scan(
            &SOURCE.replace("    /// Starts serving.\n", ""),
            "src/zone.rs",
            &mut classes,
        )
        .unwrap();
        let err = page(&classes[0]).unwrap_err().to_string();
        assert!(err.contains("Zone.start"), "{err}");
    }

    #[test]
    fn the_limits_class_is_read_from_its_macro_and_the_list() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let file = "rust/fabric-godot/src/limits.rs";
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        let mut classes = Vec::new();
        scan(&source, file, &mut classes).unwrap();
        let c = classes
            .iter()
            .find(|c| c.name == "FabricNetLimits")
            .expect("FabricNetLimits is found");
        assert_eq!(c.base, "Resource");
        assert!(c.doc.starts_with("The limits of a server"), "{}", c.doc);
        let props: Vec<_> = c.properties.iter().map(|m| m.name.as_str()).collect();
        let listed: Vec<_> = fabric_net::limits::SETTINGS
            .iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(props, listed, "one property per limit, in the list's order");
        let cap = &c.properties[4];
        assert_eq!(cap.signature, "max_sessions_per_address: int");
        assert!(cap.doc.ends_with("Default: 128."), "{}", cap.doc);
        assert!(
            c.properties[0].doc.ends_with("Default: 4 MiB."),
            "{}",
            c.properties[0].doc
        );
        page(c).expect("every member documented");
    }

    #[test]
    fn rust_types_read_as_godot_types() {
        for (rust, godot) in [
            ("Gd < FabricSnapshot >", "FabricSnapshot"),
            ("Option<Gd<Node>>", "Node"),
            ("Array<GString>", "Array[String]"),
            ("PackedByteArray", "PackedByteArray"),
            ("u32", "int"),
            ("f64", "float"),
            ("Vector3", "Vector3"),
        ] {
            assert_eq!(godot_type(rust), godot, "{rust}");
        }
    }

    #[test]
    fn a_gdscript_class_is_read_with_its_public_documented_members() {
        let text = "@icon(\"x.svg\")\nclass_name FabricThing\nextends Node\n## Does things.\n##\n## [codeblock]\n## var t := FabricThing.new()\n## [/codeblock]\n## See [method go].\n\n## Went.\nsignal went(n: int)\n\nconst _PRIVATE := 1\n## How far.\n@export var reach := 5.0\nvar _hidden := 0\n\n\n## Goes [code]n[/code] steps.\nfunc go(n: int) -> bool:\n\treturn true\n\n\nfunc _ready() -> void:\n\tpass\n";
        let c = gdscript_class(text, "addons/x.gd").unwrap();
        assert_eq!((c.name.as_str(), c.base.as_str()), ("FabricThing", "Node"));
        assert_eq!(
            c.doc,
            "Does things.\n\n```gdscript\nvar t := FabricThing.new()\n```\nSee `go()`."
        );
        assert_eq!(c.signals[0].signature, "went(n: int)");
        assert_eq!(c.signals[0].doc, "Went.");
        assert_eq!(c.properties.len(), 1, "private variables are left out");
        assert_eq!(c.properties[0].signature, "reach := 5.0");
        assert_eq!(
            c.methods.len(),
            1,
            "virtual and private functions are left out"
        );
        assert_eq!(c.methods[0].signature, "go(n: int) -> bool");
        assert_eq!(c.methods[0].doc, "Goes `n` steps.");
        assert!(c.constants.is_empty());
        assert!(gdscript_class("extends Node\n", "a.gd").is_none());
    }
}
