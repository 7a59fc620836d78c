//! Key templates: `"user:{id}"`, `"order:{{{customer}}}:{id}"`.
//!
//! `{name}` is a placeholder; `{{` and `}}` are literal braces (as in
//! `format!`). Literal braces form the Redis Cluster hash tag: at most one
//! pair, `{` before `}`, with something between them. Literal text may not
//! contain what [`forbidden_in_literal`](crate::forbidden_in_literal)
//! refuses: `#` (reserved for redis-state's own keys), `%` (the escape
//! character), glob characters `* ? [ ] \`, whitespace or control
//! characters, so that keys stay unambiguous and prefixes are safe `SCAN`
//! patterns.
//!
//! Every placeholder is a whole key segment: it starts the template or
//! follows `:` or the hash tag's `{`, and it ends the template or is
//! followed by `:` or the hash tag's `}`. Values are escaped injectively and
//! the escaped form never holds `:` or a brace, so each value ends exactly
//! where its segment does and two different ids cannot render one key
//! (`"order:{customer}-{id}"` would give `order:a-b-c` for both
//! `("a-b", "c")` and `("a", "b-c")`).

use std::fmt;
use std::str::Chars;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Segment {
    /// Literal text, with `{{` / `}}` already read as single braces.
    Lit(String),
    /// A placeholder: the name between the braces.
    Part(String),
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    scope: Option<usize>,
}

/// Why a text is not a key template. The messages are written for the
/// template's author.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A second `{{`.
    SecondHashTag,
    /// `}}` without `{{` before it.
    UnmatchedTagClose,
    /// `{{}}`.
    EmptyHashTag,
    /// `{name` without `}`; holds what follows the brace.
    UnclosedPlaceholder(String),
    /// `{...}` whose content is not an identifier; holds the content.
    NotAPlaceholder(String),
    /// A single `}` outside a placeholder.
    UnmatchedBrace,
    /// A character literal key text may not hold.
    Forbidden(char),
    /// `{{` without `}}` after it.
    UnclosedHashTag,
    /// Placeholders that are not whole segments.
    NotWholeSegments {
        /// Each junction at fault, as a phrase.
        problems: Vec<String>,
        /// Two ids that would render one key, when two placeholders meet.
        collision: Option<String>,
        /// The template with a `:` at every junction that lacks one.
        suggestion: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::SecondHashTag => {
                f.write_str("a key template may contain one hash tag: a single `{{` ... `}}` pair")
            }
            TemplateError::UnmatchedTagClose => f.write_str(
                "`}}` without a matching `{{`: a key template may contain one hash tag `{{...}}`",
            ),
            TemplateError::EmptyHashTag => {
                f.write_str("empty hash tag `{{}}`: Redis would hash the whole key")
            }
            TemplateError::UnclosedPlaceholder(name) => write!(
                f,
                "unclosed placeholder `{{{name}`: write `{{field}}`, or `{{{{` for a literal brace"
            ),
            TemplateError::NotAPlaceholder(name) => write!(
                f,
                "`{{{name}}}` is not a placeholder: placeholders name a field, like `{{id}}`"
            ),
            TemplateError::UnmatchedBrace => {
                f.write_str("unmatched `}`: write `}}` for a literal brace")
            }
            TemplateError::Forbidden(c) => write!(
                f,
                "`{}` is not allowed in a key template: `#` is reserved for redis-state's own keys, `%` for escaping, and glob characters, whitespace and control characters would make keys ambiguous in SCAN patterns",
                c.escape_debug()
            ),
            TemplateError::UnclosedHashTag => f.write_str("`{{` without a matching `}}`"),
            TemplateError::NotWholeSegments {
                problems,
                collision,
                suggestion,
            } => write!(
                f,
                "{}{}; placeholders must be whole key segments, set off by `:` or the hash tag's braces: write `{suggestion}`",
                problems.join("; "),
                collision.as_deref().unwrap_or_default(),
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Why [`Template::tag_placeholder`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagError {
    /// The template already has a hash tag.
    AlreadyTagged,
    /// The name is not a placeholder of the template.
    NotAPlaceholder,
}

impl Template {
    /// Parses a template and checks that every placeholder is a whole
    /// segment.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let t = Template::parse_lenient(src)?;
        t.check_segments()?;
        Ok(t)
    }

    /// Reads the template without the whole-segment check: for follow-up
    /// checks after that error was reported, and for readers that only need
    /// the placeholders.
    pub fn parse_lenient(src: &str) -> Result<Template, TemplateError> {
        let mut reader = Reader::default();
        let mut chars = src.chars();
        while let Some(c) = chars.next() {
            let doubled = chars.clone().next() == Some(c);
            match c {
                '{' if doubled => {
                    chars.next();
                    reader.open_tag()?;
                }
                '}' if doubled => {
                    chars.next();
                    reader.close_tag()?;
                }
                '{' => reader.placeholder(&mut chars)?,
                '}' => return Err(TemplateError::UnmatchedBrace),
                c => reader.literal(c)?,
            }
        }
        reader.finish()
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The number of leading segments through the closing brace of the hash
    /// tag; `None` without a hash tag.
    pub fn scope(&self) -> Option<usize> {
        self.scope
    }

    /// True when the template has a hash tag.
    pub fn has_tag(&self) -> bool {
        self.scope.is_some()
    }

    /// Placeholder names in template order.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        parts_of(&self.segments)
    }

    /// Placeholder names inside the scope (through the hash tag).
    pub fn scope_parts(&self) -> impl Iterator<Item = &str> {
        parts_of(&self.segments[..self.scope.unwrap_or(0)])
    }

    /// Wraps placeholder `name` in literal braces: `"order:{customer}:{id}"`
    /// tagged at `customer` is `"order:{{{customer}}}:{id}"`.
    pub fn tag_placeholder(&mut self, name: &str) -> Result<(), TagError> {
        if self.has_tag() {
            return Err(TagError::AlreadyTagged);
        }
        let pos = self
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Part(p) if p == name))
            .ok_or(TagError::NotAPlaceholder)?;
        let rest = self.segments.split_off(pos);
        match self.segments.last_mut() {
            Some(Segment::Lit(prev)) => prev.push('{'),
            _ => self.segments.push(Segment::Lit("{".to_owned())),
        }
        let mut rest = rest.into_iter();
        self.segments.extend(rest.next());
        self.segments.push(Segment::Lit("}".to_owned()));
        self.scope = Some(self.segments.len());
        self.segments.extend(rest);
        Ok(())
    }

    /// Refuses placeholders that are not whole segments, with the corrected
    /// template.
    fn check_segments(&self) -> Result<(), TemplateError> {
        let mut problems = Vec::new();
        let mut collision = None;
        for (i, seg) in self.segments.iter().enumerate() {
            let Segment::Part(name) = seg else { continue };
            self.check_left(i, name, &mut problems, &mut collision);
            self.check_right(i, name, &mut problems);
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(TemplateError::NotWholeSegments {
            problems,
            collision,
            suggestion: self.suggest(),
        })
    }

    /// The left side of placeholder `i`: the start, `:` or the tag's `{`. A
    /// separator between two placeholders is reported here, once.
    fn check_left(
        &self,
        i: usize,
        name: &str,
        problems: &mut Vec<String>,
        collision: &mut Option<String>,
    ) {
        let segs = &self.segments;
        match i.checked_sub(1).map(|j| &segs[j]) {
            None => {}
            Some(Segment::Lit(l)) if l.ends_with([':', '{']) => {}
            Some(Segment::Part(prev)) => {
                problems.push(format!("`{{{prev}}}` and `{{{name}}}` touch"));
                collision.get_or_insert_with(|| example(prev, name, "1", "23", "12", "3"));
            }
            Some(Segment::Lit(l)) => match i.checked_sub(2).map(|j| &segs[j]) {
                Some(Segment::Part(prev)) if !l.contains([':', '{', '}']) => {
                    problems.push(format!(
                        "`{{{prev}}}` and `{{{name}}}` are separated by `{l}`, not by `:`"
                    ));
                    collision.get_or_insert_with(|| {
                        example(prev, name, &format!("x{l}y"), "z", "x", &format!("y{l}z"))
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
    }

    /// The right side of placeholder `i`: the end, `:` or the tag's `}`.
    fn check_right(&self, i: usize, name: &str, problems: &mut Vec<String>) {
        let segs = &self.segments;
        match segs.get(i + 1) {
            None | Some(Segment::Part(_)) => {}
            Some(Segment::Lit(l)) if l.starts_with([':', '}']) => {}
            Some(Segment::Lit(l))
                if matches!(segs.get(i + 2), Some(Segment::Part(_)))
                    && !l.contains([':', '{', '}']) => {}
            Some(Segment::Lit(l)) if l.starts_with('{') => {
                problems.push(format!(
                    "`{{{name}}}` is followed by the hash tag's opening brace"
                ));
            }
            Some(Segment::Lit(l)) => {
                let piece = l.split([':', '{', '}']).next().unwrap_or(l);
                problems.push(format!(
                    "`{{{name}}}` is joined to the literal text `{piece}`"
                ));
            }
        }
    }

    /// The template with a `:` at every junction that lacks one; a run of
    /// separator characters there (`-`, `_`, `.`) becomes the `:`.
    fn suggest(&self) -> String {
        let segs = &self.segments;
        let is_part =
            |i: Option<usize>| matches!(i.and_then(|i| segs.get(i)), Some(Segment::Part(_)));
        let mut out = String::new();
        for (i, seg) in segs.iter().enumerate() {
            match seg {
                Segment::Part(name) => {
                    if is_part(i.checked_sub(1)) {
                        out.push(':');
                    }
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
                Segment::Lit(l) => {
                    let after_part = is_part(i.checked_sub(1));
                    let before_part = is_part(Some(i + 1));
                    let text = separate(l, after_part, before_part);
                    out.push_str(&text.replace('{', "{{").replace('}', "}}"));
                }
            }
        }
        out
    }
}

/// Literal text `l` of a suggestion, with a `:` where it meets a placeholder
/// without one.
fn separate(l: &str, after_part: bool, before_part: bool) -> String {
    let mut text = l.to_owned();
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
    text
}

fn parts_of(segments: &[Segment]) -> impl Iterator<Item = &str> {
    segments.iter().filter_map(|s| match s {
        Segment::Part(p) => Some(p.as_str()),
        Segment::Lit(_) => None,
    })
}

/// ` (... give one key)`: two different values of `a` and `b` rendering alike.
fn example(a: &str, b: &str, a1: &str, b1: &str, a2: &str, b2: &str) -> String {
    format!(
        " (`{a}` = \"{a1}\", `{b}` = \"{b1}\" and `{a}` = \"{a2}\", `{b}` = \"{b2}\" give one key)"
    )
}

/// Characters a corrected template drops where it puts a `:` instead.
fn is_separator(c: char) -> bool {
    !c.is_alphanumeric() && !matches!(c, ':' | '{' | '}')
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The state of [`Template::parse_lenient`].
#[derive(Default)]
struct Reader {
    segments: Vec<Segment>,
    lit: String,
    open_seen: bool,
    tag_content: bool,
    scope: Option<usize>,
}

impl Reader {
    fn in_tag(&self) -> bool {
        self.open_seen && self.scope.is_none()
    }

    fn flush(&mut self) {
        if !self.lit.is_empty() {
            self.segments
                .push(Segment::Lit(std::mem::take(&mut self.lit)));
        }
    }

    fn open_tag(&mut self) -> Result<(), TemplateError> {
        if self.open_seen {
            return Err(TemplateError::SecondHashTag);
        }
        self.open_seen = true;
        self.lit.push('{');
        Ok(())
    }

    fn close_tag(&mut self) -> Result<(), TemplateError> {
        if !self.in_tag() {
            return Err(TemplateError::UnmatchedTagClose);
        }
        if !self.tag_content && self.lit.ends_with('{') {
            return Err(TemplateError::EmptyHashTag);
        }
        self.lit.push('}');
        self.flush();
        self.scope = Some(self.segments.len());
        Ok(())
    }

    /// A placeholder: `chars` is past its `{`.
    fn placeholder(&mut self, chars: &mut Chars<'_>) -> Result<(), TemplateError> {
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
            return Err(TemplateError::UnclosedPlaceholder(name));
        }
        if !is_ident(&name) {
            return Err(TemplateError::NotAPlaceholder(name));
        }
        if self.in_tag() {
            self.tag_content = true;
        }
        self.flush();
        self.segments.push(Segment::Part(name));
        Ok(())
    }

    fn literal(&mut self, c: char) -> Result<(), TemplateError> {
        if crate::forbidden_in_literal(c) {
            return Err(TemplateError::Forbidden(c));
        }
        if self.in_tag() {
            self.tag_content = true;
        }
        self.lit.push(c);
        Ok(())
    }

    fn finish(mut self) -> Result<Template, TemplateError> {
        if self.in_tag() {
            return Err(TemplateError::UnclosedHashTag);
        }
        self.flush();
        Ok(Template {
            segments: self.segments,
            scope: self.scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Lit(s.to_owned())
    }
    fn part(s: &str) -> Segment {
        Segment::Part(s.to_owned())
    }

    #[test]
    fn plain() {
        let t = Template::parse("user:{id}").unwrap();
        assert_eq!(t.segments(), [lit("user:"), part("id")]);
        assert_eq!(t.scope(), None);
    }

    #[test]
    fn static_tag() {
        let t = Template::parse("{{user}}:{id}").unwrap();
        assert_eq!(t.segments(), [lit("{user}"), lit(":"), part("id")]);
        assert_eq!(t.scope(), Some(1));
    }

    #[test]
    fn placeholder_tag() {
        let t = Template::parse("order:{{{customer}}}:{id}").unwrap();
        assert_eq!(
            t.segments(),
            [
                lit("order:{"),
                part("customer"),
                lit("}"),
                lit(":"),
                part("id")
            ]
        );
        assert_eq!(t.scope(), Some(3));
        assert_eq!(t.scope_parts().collect::<Vec<_>>(), ["customer"]);
    }

    #[test]
    fn shorthand_tag() {
        let mut t = Template::parse("order:{customer}:{id}").unwrap();
        t.tag_placeholder("customer").unwrap();
        assert_eq!(t, Template::parse("order:{{{customer}}}:{id}").unwrap());
        assert_eq!(t.tag_placeholder("id"), Err(TagError::AlreadyTagged));
        let mut t = Template::parse("order:{id}").unwrap();
        assert_eq!(t.tag_placeholder("x"), Err(TagError::NotAPlaceholder));
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
            assert!(Template::parse(good).is_ok(), "{good} refused");
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
            let err = Template::parse(bad).expect_err(bad).to_string();
            assert!(err.ends_with(&format!("write `{fixed}`")), "{bad}: {err}");
            assert!(
                Template::parse(fixed).is_ok(),
                "suggestion {fixed} for {bad}"
            );
            assert!(Template::parse_lenient(bad).is_ok(), "{bad} is well formed");
        }
        let err = Template::parse("order:{customer}-{id}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`{customer}` and `{id}` are separated by `-`, not by `:` (`customer` = \"x-y\", `id` = \"z\" and `customer` = \"x\", `id` = \"y-z\" give one key)"), "{err}");
    }

    #[test]
    fn errors() {
        for (bad, err) in [
            ("user:{id", TemplateError::UnclosedPlaceholder("id".into())),
            ("user:}", TemplateError::UnmatchedBrace),
            ("user:{}", TemplateError::NotAPlaceholder(String::new())),
            ("user:{1x}", TemplateError::NotAPlaceholder("1x".into())),
            ("{{}}:{id}", TemplateError::EmptyHashTag),
            ("{{a}}{{b}}:{id}", TemplateError::SecondHashTag),
            ("user:#{id}", TemplateError::Forbidden('#')),
            ("user:{id}*", TemplateError::Forbidden('*')),
            ("user {id}", TemplateError::Forbidden(' ')),
            ("user\u{a0}{id}", TemplateError::Forbidden('\u{a0}')),
            ("{{user:{id}", TemplateError::UnclosedHashTag),
            ("user}}:{id}", TemplateError::UnmatchedTagClose),
        ] {
            assert_eq!(Template::parse(bad), Err(err), "{bad}");
        }
    }
}
