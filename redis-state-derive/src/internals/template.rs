//! Key templates: `"user:{id}"`, `"order:{{{customer}}}:{id}"`.
//!
//! `{name}` is a placeholder; `{{` and `}}` are literal braces (as in
//! `format!`). Literal braces form the Redis Cluster hash tag: at most one
//! pair, `{` before `}`, with something between them. Literal text may not
//! contain `#` (reserved for redis-state's own keys), `%` (the escape
//! character), glob characters `* ? [ ] \`, whitespace or control
//! characters, so that keys stay unambiguous and prefixes are safe `SCAN`
//! patterns.
//!
//! Every placeholder is a whole key segment: it starts the template or
//! follows `:` or the hash tag's `{`, and it ends the template or is followed
//! by `:` or the hash tag's `}`. Values are escaped injectively and the
//! escaped form never holds `:` or a brace, so each value ends exactly where
//! its segment does and two different ids cannot render one key
//! (`"order:{customer}-{id}"` would give `order:a-b-c` for both
//! `("a-b", "c")` and `("a", "b-c")`).

use super::ctxt::Ctxt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TSeg {
    Lit(String),
    Part(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) segs: Vec<TSeg>,
    /// Number of leading segments through the closing brace of the hash tag.
    pub(crate) scope: Option<usize>,
}

impl Template {
    /// Placeholder names in template order.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            TSeg::Part(p) => Some(p.as_str()),
            TSeg::Lit(_) => None,
        })
    }

    /// Placeholder names inside the scope (through the hash tag).
    pub(crate) fn scope_parts(&self) -> Vec<&str> {
        let n = self.scope.unwrap_or(0);
        self.segs[..n]
            .iter()
            .filter_map(|s| match s {
                TSeg::Part(p) => Some(p.as_str()),
                TSeg::Lit(_) => None,
            })
            .collect()
    }

    pub(crate) fn has_tag(&self) -> bool {
        self.scope.is_some()
    }

    /// Wraps placeholder `name` in literal braces (the `hash_tag = "name"`
    /// shorthand). Fails if the template already has a tag or lacks `name`.
    pub(crate) fn tag_placeholder(&mut self, name: &str) -> Result<(), String> {
        if self.has_tag() {
            return Err(
                "the key template already has a hash tag; remove `hash_tag` or the braces"
                    .to_owned(),
            );
        }
        let Some(pos) = self
            .segs
            .iter()
            .position(|s| matches!(s, TSeg::Part(p) if p == name))
        else {
            let parts: Vec<String> = self.parts().map(|p| format!("`{p}`")).collect();
            let known = if parts.is_empty() {
                "it has none".to_owned()
            } else {
                format!("its placeholders are {}", parts.join(", "))
            };
            return Err(format!(
                "hash_tag names `{name}`, which is not a placeholder of the key template; {known}"
            ));
        };
        let rest = self.segs.split_off(pos);
        match self.segs.last_mut() {
            Some(TSeg::Lit(prev)) => prev.push('{'),
            _ => self.segs.push(TSeg::Lit("{".to_owned())),
        }
        let mut rest = rest.into_iter();
        if let Some(part) = rest.next() {
            self.segs.push(part);
        }
        self.segs.push(TSeg::Lit("}".to_owned()));
        self.scope = Some(self.segs.len());
        self.segs.extend(rest);
        Ok(())
    }
}

/// A derive's key template: `key = "..."` as written, or the derive's
/// default; errors about it go to the literal, or to the type's name when
/// the template is the default.
pub(crate) struct KeyAttr<'a> {
    /// The template's source text.
    pub(crate) src: String,
    lit: Option<syn::LitStr>,
    ident: &'a syn::Ident,
}

impl<'a> KeyAttr<'a> {
    /// `lit` from `key = "..."`, else `default()`.
    pub(crate) fn new(
        lit: Option<syn::LitStr>,
        ident: &'a syn::Ident,
        default: impl FnOnce() -> String,
    ) -> Self {
        let src = lit.as_ref().map_or_else(default, syn::LitStr::value);
        KeyAttr { src, lit, ident }
    }

    /// True when the template is the default (no `key`).
    pub(crate) fn is_default(&self) -> bool {
        self.lit.is_none()
    }

    /// Reports `msg` at the template.
    pub(crate) fn error(&self, cx: &Ctxt, msg: String) {
        match &self.lit {
            Some(lit) => cx.error_spanned_by(lit, msg),
            None => cx.error_spanned_by(self.ident, msg),
        }
    }

    /// Parses the template and applies `hash_tag = "name"`; errors are
    /// reported, at the template or at the `hash_tag` literal.
    pub(crate) fn parse(&self, cx: &Ctxt, hash_tag: Option<syn::LitStr>) -> Option<Template> {
        let mut template = match parse(&self.src) {
            Ok(t) => t,
            Err(msg) => {
                self.error(cx, format!("malformed key template: {msg}"));
                // Placeholders that are not whole segments: the rest of the
                // template is still checked, so every error shows at once.
                parse_lenient(&self.src).ok()?
            }
        };
        if let Some(tag) = hash_tag
            && let Err(msg) = template.tag_placeholder(&tag.value())
        {
            cx.error_spanned_by(&tag, msg);
        }
        Some(template)
    }
}

/// Parses a tag template (`tag = "..."`, `invalidates_tag = "..."`): a name
/// over fields, without a hash tag. Errors are reported at the literal.
pub(crate) fn parse_tag(cx: &Ctxt, lit: &syn::LitStr) -> Option<Template> {
    let t = match parse(&lit.value()) {
        Ok(t) => t,
        Err(msg) => {
            cx.error_spanned_by(lit, format!("malformed tag template: {msg}"));
            return None;
        }
    };
    if t.has_tag() {
        cx.error_spanned_by(
            lit,
            "a tag is a name, not a key: it cannot hold a hash tag `{{...}}`",
        );
        return None;
    }
    Some(t)
}

fn forbidden(c: char) -> bool {
    matches!(c, '#' | '%' | '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control()
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Parses a template and checks that every placeholder is a whole segment.
/// Errors are messages for the template literal.
pub(crate) fn parse(src: &str) -> Result<Template, String> {
    let t = parse_lenient(src)?;
    check_segments(&t)?;
    Ok(t)
}

/// Reads the template without the whole-segment check: for follow-up checks
/// after that error was reported, and for the fallback impls, which only
/// need the placeholders.
pub(crate) fn parse_lenient(src: &str) -> Result<Template, String> {
    let mut segs: Vec<TSeg> = Vec::new();
    let mut lit = String::new();
    let mut open_seen = false;
    let mut tag_content = false;
    let mut scope = None;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                if open_seen {
                    return Err(
                        "a key template may contain one hash tag: a single `{{` ... `}}` pair"
                            .to_owned(),
                    );
                }
                open_seen = true;
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                if !open_seen || scope.is_some() {
                    return Err(
                        "`}}` without a matching `{{`: a key template may contain one hash tag `{{...}}`"
                            .to_owned(),
                    );
                }
                if !tag_content && lit.ends_with('{') {
                    return Err("empty hash tag `{{}}`: Redis would hash the whole key".to_owned());
                }
                lit.push('}');
                segs.push(TSeg::Lit(std::mem::take(&mut lit)));
                scope = Some(segs.len());
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!(
                        "unclosed placeholder `{{{name}`: write `{{field}}`, or `{{{{` for a literal brace"
                    ));
                }
                if !is_ident(&name) {
                    return Err(format!(
                        "`{{{name}}}` is not a placeholder: placeholders name a field, like `{{id}}`"
                    ));
                }
                if open_seen && scope.is_none() {
                    tag_content = true;
                }
                if !lit.is_empty() {
                    segs.push(TSeg::Lit(std::mem::take(&mut lit)));
                }
                segs.push(TSeg::Part(name));
            }
            '}' => {
                return Err("unmatched `}`: write `}}` for a literal brace".to_owned());
            }
            c if forbidden(c) => {
                return Err(format!(
                    "`{}` is not allowed in a key template: `#` is reserved for redis-state's own keys, `%` for escaping, and glob characters, whitespace and control characters would make keys ambiguous in SCAN patterns",
                    c.escape_debug()
                ));
            }
            c => {
                if open_seen && scope.is_none() {
                    tag_content = true;
                }
                lit.push(c);
            }
        }
    }
    if open_seen && scope.is_none() {
        return Err("`{{` without a matching `}}`".to_owned());
    }
    if !lit.is_empty() {
        segs.push(TSeg::Lit(lit));
    }
    Ok(Template { segs, scope })
}

/// Refuses placeholders that are not whole segments, with the corrected
/// template.
fn check_segments(t: &Template) -> Result<(), String> {
    let segs = &t.segs;
    let mut problems = Vec::new();
    let mut example = None;
    for (i, seg) in segs.iter().enumerate() {
        let TSeg::Part(name) = seg else { continue };
        // Left side: the start, `:` or the tag's `{`. A separator between
        // two placeholders is reported here, once.
        match i.checked_sub(1).map(|j| &segs[j]) {
            None => {}
            Some(TSeg::Lit(l)) if l.ends_with([':', '{']) => {}
            Some(TSeg::Part(prev)) => {
                problems.push(format!("`{{{prev}}}` and `{{{name}}}` touch"));
                example.get_or_insert_with(|| collision(prev, name, "1", "23", "12", "3"));
            }
            Some(TSeg::Lit(l)) => match i.checked_sub(2).map(|j| &segs[j]) {
                Some(TSeg::Part(prev)) if !l.contains([':', '{', '}']) => {
                    problems.push(format!(
                        "`{{{prev}}}` and `{{{name}}}` are separated by `{l}`, not by `:`"
                    ));
                    example.get_or_insert_with(|| {
                        collision(prev, name, &format!("x{l}y"), "z", "x", &format!("y{l}z"))
                    });
                }
                _ if l.ends_with('}') => {
                    problems.push(format!("`{{{name}}}` follows the hash tag's closing brace"));
                }
                _ => {
                    let piece = l.rsplit([':', '{', '}']).next().unwrap_or(l);
                    problems.push(format!(
                        "`{{{name}}}` is joined to the literal text `{piece}`"
                    ));
                }
            },
        }
        // Right side: the end, `:` or the tag's `}`.
        match segs.get(i + 1) {
            None | Some(TSeg::Part(_)) => {}
            Some(TSeg::Lit(l)) if l.starts_with([':', '}']) => {}
            Some(TSeg::Lit(l))
                if matches!(segs.get(i + 2), Some(TSeg::Part(_)))
                    && !l.contains([':', '{', '}']) => {}
            Some(TSeg::Lit(l)) if l.starts_with('{') => {
                problems.push(format!(
                    "`{{{name}}}` is followed by the hash tag's opening brace"
                ));
            }
            Some(TSeg::Lit(l)) => {
                let piece = l.split([':', '{', '}']).next().unwrap_or(l);
                problems.push(format!(
                    "`{{{name}}}` is joined to the literal text `{piece}`"
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}{}; placeholders must be whole key segments, set off by `:` or the hash tag's braces: write `{}`",
        problems.join("; "),
        example.unwrap_or_default(),
        suggest(t)
    ))
}

/// ` (... give one key)`: two different values of `a` and `b` rendering alike.
fn collision(a: &str, b: &str, a1: &str, b1: &str, a2: &str, b2: &str) -> String {
    format!(
        " (`{a}` = \"{a1}\", `{b}` = \"{b1}\" and `{a}` = \"{a2}\", `{b}` = \"{b2}\" give one key)"
    )
}

/// Characters a corrected template drops where it puts a `:` instead.
fn is_separator(c: char) -> bool {
    !c.is_alphanumeric() && !matches!(c, ':' | '{' | '}')
}

/// The template with a `:` at every junction that lacks one; a run of
/// separator characters there (`-`, `_`, `.`) becomes the `:`.
fn suggest(t: &Template) -> String {
    let segs = &t.segs;
    let is_part = |i: Option<usize>| matches!(i.and_then(|i| segs.get(i)), Some(TSeg::Part(_)));
    let mut out = String::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            TSeg::Part(name) => {
                if is_part(i.checked_sub(1)) {
                    out.push(':');
                }
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
            TSeg::Lit(l) => {
                let (after_part, before_part) = (is_part(i.checked_sub(1)), is_part(Some(i + 1)));
                let mut text = l.clone();
                if after_part && !text.starts_with([':', '}']) {
                    text = text.trim_start_matches(is_separator).to_owned();
                    if !text.starts_with([':', '}']) && (before_part || !text.is_empty()) {
                        text.insert(0, ':');
                    }
                }
                if before_part && !text.ends_with([':', '{']) {
                    text = text.trim_end_matches(is_separator).to_owned();
                    if !text.ends_with([':', '{']) && (after_part || !text.is_empty()) {
                        text.push(':');
                    }
                }
                out.push_str(&text.replace('{', "{{").replace('}', "}}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> TSeg {
        TSeg::Lit(s.to_owned())
    }
    fn part(s: &str) -> TSeg {
        TSeg::Part(s.to_owned())
    }

    #[test]
    fn plain() {
        let t = parse("user:{id}").unwrap();
        assert_eq!(t.segs, vec![lit("user:"), part("id")]);
        assert_eq!(t.scope, None);
    }

    #[test]
    fn static_tag() {
        let t = parse("{{user}}:{id}").unwrap();
        assert_eq!(t.segs, vec![lit("{user}"), lit(":"), part("id")]);
        assert_eq!(t.scope, Some(1));
    }

    #[test]
    fn placeholder_tag() {
        let t = parse("order:{{{customer}}}:{id}").unwrap();
        assert_eq!(
            t.segs,
            vec![
                lit("order:{"),
                part("customer"),
                lit("}"),
                lit(":"),
                part("id")
            ]
        );
        assert_eq!(t.scope, Some(3));
        assert_eq!(t.scope_parts(), vec!["customer"]);
    }

    #[test]
    fn shorthand_tag() {
        let mut t = parse("order:{customer}:{id}").unwrap();
        t.tag_placeholder("customer").unwrap();
        assert_eq!(
            t.segs,
            vec![
                lit("order:{"),
                part("customer"),
                lit("}"),
                lit(":"),
                part("id")
            ]
        );
        assert_eq!(t.scope, Some(3));
    }

    #[test]
    fn whole_segments() {
        for good in [
            "{id}",
            "user:{id}",
            "{id}:x",
            "pair:{a}:{b}",
            "{{user}}:{id}",
            "order:{{{customer}}}:{id}",
            "{{lb:{game}}}",
            "{{{a}:{b}}}:x",
            "lb:{game}:{{{region}}}",
        ] {
            assert!(parse(good).is_ok(), "{good} refused: {:?}", parse(good));
        }
        for (bad, fixed) in [
            ("order:{customer}-{id}", "order:{customer}:{id}"),
            ("item:{a}{b}", "item:{a}:{b}"),
            ("user{id}", "user:{id}"),
            ("user_{id}", "user:{id}"),
            ("{id}.json", "{id}:json"),
            ("user:{id}-", "user:{id}"),
            ("-{id}", "{id}"),
            ("{a}-x-{b}", "{a}:x:{b}"),
            ("{a}x:y{b}", "{a}:x:y:{b}"),
            ("{{user}}{id}", "{{user}}:{id}"),
            ("{id}{{user}}", "{id}:{{user}}"),
            ("{{x{id}}}", "{{x:{id}}}"),
            ("{{{id}x}}", "{{{id}:x}}"),
            ("{{-{id}}}", "{{{id}}}"),
            ("a{x}{y}{z}b", "a:{x}:{y}:{z}:b"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.ends_with(&format!("write `{fixed}`")), "{bad}: {err}");
            assert!(parse(fixed).is_ok(), "suggestion {fixed} for {bad}");
            assert!(parse_lenient(bad).is_ok(), "{bad} is well formed");
        }
        let err = parse("order:{customer}-{id}").unwrap_err();
        assert!(err.starts_with("`{customer}` and `{id}` are separated by `-`, not by `:` (`customer` = \"x-y\", `id` = \"z\" and `customer` = \"x\", `id` = \"y-z\" give one key)"), "{err}");
    }

    #[test]
    fn errors() {
        for bad in [
            "user:{id",
            "user:}",
            "user:{}",
            "user:{1x}",
            "{{}}:{id}",
            "{{a}}{{b}}:{id}",
            "user:#{id}",
            "user:{id}*",
            "user {id}",
            "{{user:{id}",
            "user}}:{id}",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
