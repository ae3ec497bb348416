//! Parsing a large file's long list (the environments) in parts, one thread
//! each.
//!
//! Why: reading, building, checking and decoding a 400 KiB configuration
//! is several milliseconds of one core's work, and YAML cannot be split in
//! general. The file can: items of a block sequence are independent texts.
//!
//! How it stays exact:
//! 1. [`plan`] scans the lines (no YAML) and proposes where the list's items
//!    start: lines at the list's indentation that begin with `- `, under a
//!    root key written `key:` at the start of a line.
//! 2. [`parse`] reads each part as a YAML document of its own, from a
//!    proposed item start to the next part's; the first part is the file's
//!    start, the last part ends where the list ends, and whatever follows
//!    the list (more root keys) is a part of its own.
//! 3. Every item must start exactly on a proposed line, the first part's
//!    root must end with the list, and the parts together must keep every
//!    budget. An alias can only name an anchor of its own part (one that
//!    names another part's anchor is an error there). Anything else (a
//!    mismatch, any error) and [`parse`] declines: the caller then parses
//!    the whole file as one, so errors and their positions are always the
//!    one-pass parser's.
//!
//! Why a part reads the same alone as in the file: where a `-` starts a
//! line at the list's column, outside any flow collection or scalar (which
//! item starts on the proposed lines prove), libyaml is at "next entry of
//! this block sequence"; everything inside an item is indented deeper than
//! the list, so it is read the same whatever holds the list. A part is cut
//! at a line start, so columns are unchanged and lines shift by a known
//! count (the plan refuses line breaks other than `\n` and `\r\n`, so
//! libyaml counts lines as the plan does).

use super::{Builder, Built, MAX_ALIASES, MAX_NODES, Node, Value, Watch, read};

/// Where the parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Byte offset and 0-based line of each item's first line.
    items: Vec<(usize, usize)>,
    /// Byte offset and 0-based line of the first line after the list, when
    /// something follows it.
    tail: Option<(usize, usize)>,
    /// The first item of each part after the first (which starts the file).
    cuts: Vec<usize>,
}

impl Plan {
    /// The text before the list's first item and after its end.
    pub(crate) fn outside<'s>(&self, source: &'s str) -> (&'s str, &'s str) {
        let start = self.items.first().map_or(source.len(), |(at, _)| *at);
        let end = self.tail.map_or(source.len(), |(at, _)| at);
        (&source[..start], &source[end..])
    }
}

/// Proposes how to cut `source` into `parts` parts along the items of the
/// block sequence under the root key `key`; `None` when the text does not
/// have the plain shape this needs (or is too short to share). The first
/// part's thread has other work worth `lead` percent of a part (see
/// [`parse`]'s `meanwhile`), so its part is that much smaller.
pub(crate) fn plan(source: &str, key: &str, parts: usize, lead: usize) -> Option<Plan> {
    if parts < 2 {
        return None;
    }
    // libyaml also ends lines at a lone `\r` and at NEL, LS and PS.
    if !source.is_ascii() && source.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
        return None;
    }
    if source
        .match_indices('\r')
        .any(|(i, _)| source.as_bytes().get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    let mut items = Vec::new();
    let mut tail = None;
    let mut seen_key = false;
    let mut column = None;
    let bytes = source.as_bytes();
    let mut next = 0;
    for n in 0.. {
        if next >= bytes.len() {
            break;
        }
        let start = next;
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        next = end + 1;
        let line = &source[start..end];
        let body = line.strip_suffix('\r').unwrap_or(line);
        let indent = body.bytes().position(|b| b != b' ').unwrap_or(body.len());
        let content = &body[indent..];
        let blank = content.is_empty() || content.starts_with('#');
        if !seen_key {
            // Directives (`%TAG`) would change how every part reads tags.
            if body.starts_with('%') {
                return None;
            }
            seen_key = is_key_line(body, key);
            continue;
        }
        if blank {
            continue;
        }
        // Tabs, and document markers inside the list, are left to the
        // one-pass parser.
        // A directive after the list would open the tail's own document.
        if content.starts_with('\t')
            || body.starts_with("---")
            || body.starts_with("...")
            || body.starts_with('%')
        {
            return None;
        }
        let Some(c) = column else {
            if !is_entry(content) {
                return None;
            }
            column = Some(indent);
            items.push((start, n));
            continue;
        };
        if indent == c && is_entry(content) {
            items.push((start, n));
        } else if indent == 0 && !content.starts_with('-') {
            tail = Some((start, n));
            break;
        } else if indent <= c {
            return None;
        }
    }
    // An alias in the list may name another part's anchor, which that part
    // finds only when it gets there: both ways would be paid. Such files
    // (rare) are read in one pass from the start.
    let list = &source[items.first()?.0..tail.map_or(source.len(), |(at, _)| at)];
    if list
        .match_indices('*')
        .any(|(i, _)| i == 0 || matches!(list.as_bytes()[i - 1], b' ' | b'\t' | b'[' | b'{' | b',' | b'\n'))
    {
        return None;
    }
    // Balanced by bytes; the first part also holds what precedes the list.
    let lead = lead.min(90);
    let mut cuts: Vec<usize> = Vec::with_capacity(parts - 1);
    for k in 1..parts {
        let target = source.len() * (100 * k - lead) / (100 * parts - lead);
        let cut = items.partition_point(|(at, _)| *at < target).max(1);
        if cut < items.len() && cuts.last().is_none_or(|last| *last < cut) {
            cuts.push(cut);
        }
    }
    if cuts.is_empty() {
        return None;
    }
    Some(Plan { items, tail, cuts })
}

/// `key:` at the start of a line, with nothing after it but a comment.
fn is_key_line(body: &str, key: &str) -> bool {
    let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    rest.is_empty()
        || (rest.starts_with(' ') && matches!(rest.trim_start_matches(' ').chars().next(), None | Some('#')))
}

/// A block sequence entry: `-` then a space or the line's end.
fn is_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// One part's result: its document, and its caller's state.
struct Done<S> {
    built: Built,
    state: S,
}

/// How each part's items are checked, one by one as soon as each is read,
/// so an item's tree is checked while it is still in the cache and can be
/// taken apart before the next is built (the part's trees never pile up).
pub(crate) struct Check<'a, S> {
    /// A part's state, from the part's text.
    pub start: &'a (dyn Fn(&str) -> S + Sync),
    /// Checks item `index` (of the whole list) into the state; it may take
    /// the item apart. `false` fails the part.
    pub item: &'a (dyn Fn(&mut S, usize, &mut Node) -> bool + Sync),
    /// Whether `item` would run without waiting (on the schema being
    /// compiled by another thread); until then items are held back, and
    /// checked as soon as it would, or once the part is read.
    pub ready: &'a (dyn Fn() -> bool + Sync),
}

/// What every part's thread shares.
struct Job<'a, S> {
    source: &'a str,
    key: &'a str,
    plan: &'a Plan,
    check: &'a Check<'a, S>,
    /// Set once a part has failed: the others skip their checks.
    failed: std::sync::atomic::AtomicBool,
}

/// Parses `source` in the parts of `plan`, one thread each, while the
/// calling thread runs `meanwhile`. Each part's thread checks its items
/// with `check` (see [`Check`]). Returns the whole document as the
/// one-pass parser builds it (with each item as the check left it), and
/// each part's final state, in order; or `None` when a check failed or the
/// parts do not provably make up the file (see the module documentation),
/// and then the caller parses the file as one.
pub(crate) fn parse<S: Send>(
    source: &str,
    key: &str,
    plan: &Plan,
    check: &Check<'_, S>,
    meanwhile: impl FnOnce(),
) -> Option<(Node, Vec<S>)> {
    use std::sync::atomic::Ordering;
    let job = Job {
        source,
        key,
        plan,
        check,
        failed: std::sync::atomic::AtomicBool::new(false),
    };
    let job = &job;
    let parts = plan.cuts.len() + 1;
    let run = move |k: usize| {
        let Some(done) = part(job, k) else {
            job.failed.store(true, Ordering::Relaxed);
            return None;
        };
        // The last part also reads what follows the list.
        let tail = match plan.tail {
            Some((at, line)) if k + 1 == parts => {
                let built = read(
                    &source[at..],
                    &|| Builder::new(Watch::Nothing, line),
                    &mut |_, _| {},
                );
                Some(built.ok()?)
            }
            _ => None,
        };
        Some((done, tail))
    };
    // Part 0 is read on this thread, after `meanwhile`: as many threads as
    // parts, so none waits for a core, and one thread fewer to start.
    let results: Vec<Option<(Done<S>, Option<Built>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..parts)
            .map(|k| {
                std::thread::Builder::new()
                    .name(super::PARSER_THREAD.to_owned())
                    .spawn_scoped(scope, move || run(k))
                    .ok()
            })
            .collect();
        meanwhile();
        let first = run(0);
        std::iter::once(first)
            .chain(handles.into_iter().map(|h| match h?.join() {
                Ok(result) => result,
                // Our own code panicked (libyaml's panics are caught): a bug to surface.
                Err(panic) => std::panic::resume_unwind(panic),
            }))
            .collect()
    });
    let mut done = Vec::with_capacity(parts);
    let mut tail = None;
    for result in results {
        let (d, t) = result?;
        done.push(d);
        tail = tail.or(t);
    }
    let built = done.iter().map(|d| &d.built).chain(tail.as_ref());
    let (nodes, aliases) = built.fold((0, 0), |(n, a), b| (n + b.nodes, a + b.aliases));
    if nodes > MAX_NODES || aliases > MAX_ALIASES {
        return None;
    }
    let mut done = done.into_iter();
    let first = done.next()?;
    let mut states = vec![first.state];
    let mut root = first.built.root;
    let items = last_list(&mut root, key)?;
    for d in done {
        let Value::Seq(more) = d.built.root.value else {
            return None;
        };
        items.extend(more);
        states.push(d.state);
    }
    if let Some(tail) = tail {
        let (Value::Map(entries), Value::Map(more)) = (&mut root.value, tail.root.value) else {
            return None;
        };
        if tail.root_merged {
            return None;
        }
        for (k, v) in more {
            // A key both before and after the list: the one-pass parser
            // says where (a duplicate key).
            if entries.iter().any(|(have, _)| have.name == k.name) {
                return None;
            }
            entries.push((k, v));
        }
    }
    Some((root, states))
}

/// The items of the sequence under `key`, when it is `root`'s last entry
/// (as in the first part, which ends with the list).
fn last_list<'n>(root: &'n mut Node, key: &str) -> Option<&'n mut Vec<Node>> {
    match &mut root.value {
        Value::Map(entries) => match entries.last_mut() {
            Some((
                name,
                Node {
                    value: Value::Seq(items),
                    ..
                },
            )) if name.name == key => Some(items),
            _ => None,
        },
        _ => None,
    }
}

/// Parses part `k`: the file's start for the first part, else from its
/// first item; up to the next part, or the list's end.
fn part<S>(job: &Job<'_, S>, k: usize) -> Option<Done<S>> {
    let plan = job.plan;
    let first = if k == 0 { 0 } else { plan.cuts[k - 1] };
    let next = plan.cuts.get(k).copied();
    let from = if k == 0 { 0 } else { plan.items[first].0 };
    let to = next.map_or(plan.tail.map_or(job.source.len(), |(at, _)| at), |n| {
        plan.items[n].0
    });
    let text = &job.source[from..to];
    let (line_base, depth) = if k == 0 {
        (0, 0)
    } else {
        // The part's root is the list, one level below the file's root.
        (plan.items[first].1, 1)
    };
    let watch = || {
        if k == 0 {
            Watch::RootKey(job.key.to_owned())
        } else {
            Watch::RootSeq
        }
    };
    let builder = || Builder::new(watch(), line_base).depth_from(depth);
    let check = job.check;
    let mut state = (check.start)(text);
    // Items `..checked` of the part went through `check.item`.
    let mut checked = 0;
    let mut failed = false;
    let mut check_up_to = |state: &mut S, checked: &mut usize, end: usize, items: &mut [Node]| {
        while *checked < end && !failed {
            if job.failed.load(std::sync::atomic::Ordering::Relaxed)
                || !(check.item)(state, first + *checked, &mut items[*checked])
            {
                failed = true;
                job.failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            *checked += 1;
        }
    };
    let mut built = read(text, &builder, &mut |i, items| {
        if i < checked {
            // libyaml re-reads a text the subset reader declined late.
            state = (check.start)(text);
            checked = 0;
        }
        if (check.ready)() {
            check_up_to(&mut state, &mut checked, i + 1, items);
        }
    })
    .ok()?;
    // Every item starts on its proposed line, and the first part ends with the list.
    let items = match &mut built.root.value {
        _ if k == 0 && !built.root_merged => last_list(&mut built.root, job.key)?,
        Value::Seq(items) if k > 0 => items,
        _ => return None,
    };
    let expected = &plan.items[first..next.unwrap_or(plan.items.len())];
    if items.len() != expected.len()
        || items
            .iter()
            .zip(expected)
            .any(|(item, (_, line))| item.pos.line != line + 1)
    {
        return None;
    }
    check_up_to(&mut state, &mut checked, items.len(), items);
    if failed {
        return None;
    }
    Some(Done { built, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(source: &str) -> Option<Node> {
        super::super::parse(source).ok()
    }

    /// Parses in `parts` parts, listing the items each part checked.
    fn in_parts(source: &str, parts: usize) -> Option<(Node, Vec<usize>)> {
        in_parts_led(source, parts, 0)
    }

    /// [`in_parts`] with a first part `lead` percent smaller. Checks are
    /// ready only every other time they are asked, so items are held back
    /// and caught up with along the way.
    fn in_parts_led(source: &str, parts: usize, lead: usize) -> Option<(Node, Vec<usize>)> {
        let plan = plan(source, "environments", parts, lead)?;
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let ready = || asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 1;
        let start = |_: &str| Vec::new();
        let item = |seen: &mut Vec<usize>, index: usize, _: &mut Node| {
            seen.push(index);
            true
        };
        let check = Check {
            start: &start,
            item: &item,
            ready: &ready,
        };
        let (node, states) = parse(source, "environments", &plan, &check, || {})?;
        Some((node, states.into_iter().flatten().collect()))
    }

    const ENVS: &str = "version: \"1.0\"\nbuild:\n  commands: [make]\nenvironments:\n  - name: a\n    stacks:\n      - {name: S, path: s}\n  - name: b\n    notes: |\n      - not an item\n    stacks: [x]\n  # a comment\n  - name: c\n    region: us-east-1\n  - name: d\n";

    #[test]
    fn parts_make_the_same_document_as_one_pass() {
        for parts in 2..=4 {
            let (node, seen) = in_parts(ENVS, parts).expect("this plain file is parsed in parts");
            assert_eq!(node, whole(ENVS).unwrap());
            assert_eq!(seen, vec![0, 1, 2, 3], "every item is reported once, in order");
        }
    }

    #[test]
    fn keys_after_the_list_join_the_root() {
        let src = format!("{ENVS}pipeline:\n  name: x\n# end\n");
        let (node, _) = in_parts(&src, 2).expect("parsed in parts");
        assert_eq!(node, whole(&src).unwrap());
        assert_eq!(
            plan(&src, "environments", 2, 0).unwrap().tail.map(|t| t.1),
            Some(15)
        );
    }

    /// Lines to build hostile documents from: items and their content at
    /// several indentations, and everything that changes how later lines read.
    const LINES: &[&str] = &[
        "- a",
        "  - b",
        "- name: c",
        "  - name: d",
        "    k: v",
        "  k: v",
        "- |",
        "- |+",
        "      text",
        "  text",
        "- \"open",
        "close\"",
        "- 'open",
        "close'",
        "- [x,",
        "  y]",
        "- {k: v",
        "  }",
        "# note",
        "  # note",
        "",
        "---",
        "...",
        "%YAML 1.2",
        "%TAG !e! tag:e,2000:",
        "tail: x",
        "environments:",
        "- &a x",
        "- *a",
        "  <<: {m: 1}",
        "<<: {m: 1}",
        "-",
        "\t- t",
        "- !e!x y",
        "? k",
        ": v",
        "- >-",
        "-x: 1",
        "version: 1",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]
        // Property: whatever the text, a document read in parts is exactly
        // the document one pass reads, and every item was checked once, in
        // order; when one pass refuses the text, the parts never accept it.
        #[test]
        fn parts_never_disagree_with_one_pass(
            // Half the lines are plain items and content, so that many
            // documents are read in parts at all.
            lines in proptest::collection::vec(0..2 * LINES.len(), 0..40),
            parts in 2usize..5,
            lead in 0usize..=100,
        ) {
            let mut text = String::from("environments:\n- first\n");
            for i in lines {
                text.push_str(LINES.get(i).unwrap_or(&LINES[i % 5]));
                text.push('\n');
            }
            if let Some((node, seen)) = in_parts_led(&text, parts, lead) {
                let items = node.get("environments").map_or(0, |l| l.items().len());
                proptest::prop_assert_eq!(seen, (0..items).collect::<Vec<_>>(), "for {:?}", text);
                proptest::prop_assert_eq!(Some(node), whole(&text), "for {:?}", text);
            }
        }
    }

    #[test]
    fn shapes_it_leaves_to_the_one_pass_parser() {
        let declined = |src: &str| in_parts(src, 2).is_none();
        // A multi-line quoted scalar holding what looks like an item.
        assert!(declined("environments:\n- a\n- \"x\n- y\"\n- b\n"));
        // An alias to another part's anchor.
        assert!(declined("environments:\n- &e {name: a}\n- b\n- *e\n"));
        // A key both before and after the list.
        assert!(declined("version: 1\nenvironments:\n- a\n- b\n- c\nversion: 2\n"));
        // Document markers, lone carriage returns, directives.
        assert!(declined("environments:\n- a\n...\n- b\n"));
        assert!(declined("environments:\n- a\r- b\n- c\n"));
        assert!(declined("%YAML 1.1\n---\nenvironments:\n- a\n- b\n"));
        let directive_after = "environments:\n- a\n- b\n- c\n%YAML 1.2\nbuild: x\n";
        assert!(whole(directive_after).is_none(), "one pass refuses it");
        assert!(declined(directive_after));
        // An item whose content starts on the next line.
        assert!(declined("environments:\n-\n  name: a\n- b\n- c\n"));
        // A syntax error anywhere.
        assert!(declined("environments:\n- a\n- b: [\n- c\n"));
    }
}
