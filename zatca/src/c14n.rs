//! Canonical XML 1.1 (<https://www.w3.org/TR/xml-c14n11/>, without comments) of a whole
//! document from which some subtrees are left out: the form ZATCA hashes an invoice in.
//!
//! Why written here rather than taken from a crate: the Rust XML-security crates that
//! canonicalise (e.g. `bergshamra`) need a newer compiler than this workspace's 1.85, bring
//! a full XML-DSig stack (RSA, PKCS#11, post-quantum algorithms) for one function, and ZATCA's
//! rules need a node set that their XPath filter cannot express correctly anyway (see
//! [`crate::hash`]). The subset needed is small and is what is implemented:
//!
//! - no XML declaration, no DOCTYPE (refused by [`crate::tree`]), no comments;
//! - processing instructions outside the root element on their own line, as the spec says;
//! - every element as a start and end tag pair, empty ones included;
//! - on each element, the namespace declarations whose value differs from what the nearest
//!   rendered ancestor has in scope, sorted by prefix (the default namespace first), and an
//!   `xmlns=""` where a default namespace in scope above is undone;
//! - attributes after them, sorted by namespace URI then local name (unqualified first);
//! - text with `&`, `<`, `>` and carriage return escaped; attribute values with `&`, `<`,
//!   `"`, tab, line feed and carriage return escaped;
//! - a left-out subtree disappears whole, and the text around it stays exactly as it was.
//!
//! Not needed, so not implemented: document subsets other than whole subtrees left out
//! (so C14N 1.1's `xml:id`/`xml:base` fix-ups for orphaned apexes never arise), exclusive
//! canonicalisation, and comments.

use crate::tree::{split_name, Document, Element, Node, Scope, XmlError, XML_NAMESPACE};

/// Where an element sits, for a rule that decides whether to leave it out.
pub struct Position<'a> {
    pub element: &'a Element,
    /// The namespace URI of the element.
    pub namespace: &'a str,
    /// Namespaces in scope inside the element.
    pub scope: &'a Scope,
    /// 0 for the root element.
    pub depth: usize,
}

/// The canonical form of `document`, leaving out each element (and everything inside it) for
/// which `leave_out` answers true.
pub fn canonicalize(
    document: &Document,
    leave_out: &dyn Fn(&Position<'_>) -> Result<bool, XmlError>,
) -> Result<String, XmlError> {
    let mut out = String::new();
    for instruction in &document.before_root {
        write_processing_instruction(&mut out, instruction);
        out.push('\n');
    }
    let mut writer = Writer { out, leave_out };
    writer.element(&document.root, &Scope::default(), &Scope::default(), 0)?;
    let mut out = writer.out;
    for instruction in &document.after_root {
        out.push('\n');
        write_processing_instruction(&mut out, instruction);
    }
    Ok(out)
}

struct Writer<'a> {
    out: String,
    leave_out: &'a dyn Fn(&Position<'_>) -> Result<bool, XmlError>,
}

impl Writer<'_> {
    /// Writes `element`. `outer` is the scope around it; `rendered` is what the nearest
    /// written ancestor has declared in the output.
    fn element(
        &mut self,
        element: &Element,
        outer: &Scope,
        rendered: &Scope,
        depth: usize,
    ) -> Result<(), XmlError> {
        let scope = outer.enter(element);
        let namespace = scope.namespace_of(element)?;
        let position = Position {
            element,
            namespace,
            scope: &scope,
            depth,
        };
        if (self.leave_out)(&position)? {
            return Ok(());
        }
        self.out.push('<');
        self.out.push_str(&element.name);
        let mut now_rendered = rendered.clone();
        for (prefix, uri) in namespaces_to_render(element, rendered) {
            if prefix.is_empty() {
                self.out.push_str(" xmlns=\"");
            } else {
                self.out.push_str(" xmlns:");
                self.out.push_str(&prefix);
                self.out.push_str("=\"");
            }
            escape_attribute(&mut self.out, &uri);
            self.out.push('"');
            now_rendered.bind(prefix, uri);
        }
        for (name, value) in sorted_attributes(element, &scope)? {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_attribute(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
        for child in &element.children {
            match child {
                Node::Element(child) => self.element(child, &scope, &now_rendered, depth + 1)?,
                Node::Text(text) => escape_text(&mut self.out, text),
                Node::ProcessingInstruction(instruction) => {
                    write_processing_instruction(&mut self.out, instruction)
                }
            }
        }
        self.out.push_str("</");
        self.out.push_str(&element.name);
        self.out.push('>');
        Ok(())
    }
}

/// The namespace declarations to write on `element`: those whose value differs from what
/// the nearest written ancestor has rendered (in prefix order, so the default comes first).
/// A declaration can only differ where it is made, because a subtree is left out whole and so
/// every ancestor of a written element is written too.
fn namespaces_to_render(element: &Element, rendered: &Scope) -> Vec<(String, String)> {
    element
        .namespace_declarations
        .iter()
        .filter(|(prefix, _)| prefix.as_str() != "xml")
        .filter(|(prefix, uri)| {
            let above = rendered.get(prefix);
            if prefix.is_empty() {
                above.unwrap_or("") != uri.as_str()
            } else {
                above != Some(uri.as_str())
            }
        })
        .map(|(prefix, uri)| (prefix.clone(), uri.clone()))
        .collect()
}

/// Attributes in canonical order: by namespace URI, then local name; unqualified ones have
/// no namespace and so come first.
fn sorted_attributes<'a>(
    element: &'a Element,
    scope: &Scope,
) -> Result<Vec<(&'a str, &'a str)>, XmlError> {
    let mut keyed = Vec::with_capacity(element.attributes.len());
    for (name, value) in &element.attributes {
        let (prefix, local) = split_name(name);
        let namespace = if prefix.is_empty() {
            ""
        } else if prefix == "xml" {
            XML_NAMESPACE
        } else {
            scope.resolve(prefix)?
        };
        keyed.push((
            (namespace.to_owned(), local),
            (name.as_str(), value.as_str()),
        ));
    }
    keyed.sort_by(|(left, _), (right, _)| left.cmp(right));
    Ok(keyed.into_iter().map(|(_, attribute)| attribute).collect())
}

fn write_processing_instruction(out: &mut String, instruction: &str) {
    let instruction = instruction.trim_start();
    let (target, data) = instruction
        .split_once(|c: char| c.is_ascii_whitespace())
        .map(|(target, data)| (target, data.trim_start()))
        .unwrap_or((instruction, ""));
    out.push_str("<?");
    out.push_str(target);
    if !data.is_empty() {
        out.push(' ');
        out.push_str(data);
    }
    out.push_str("?>");
}

fn escape_text(out: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            other => out.push(other),
        }
    }
}

fn escape_attribute(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse;

    fn canonical(xml: &str) -> String {
        canonicalize(&parse(xml).unwrap(), &|_| Ok(false)).unwrap()
    }

    #[test]
    fn the_declaration_goes_and_empty_elements_become_pairs() {
        assert_eq!(
            canonical("<?xml version=\"1.0\"?>\n<a><b/><c x='1'/></a>\n"),
            "<a><b></b><c x=\"1\"></c></a>"
        );
    }

    #[test]
    fn namespace_declarations_come_first_sorted_and_only_where_they_change() {
        assert_eq!(
            canonical(
                "<a xmlns:z=\"urn:z\" b=\"2\" xmlns=\"urn:d\" a=\"1\" xmlns:y=\"urn:y\">\
                 <z:c xmlns:z=\"urn:z\" xmlns:y=\"urn:other\"/></a>"
            ),
            "<a xmlns=\"urn:d\" xmlns:y=\"urn:y\" xmlns:z=\"urn:z\" a=\"1\" b=\"2\">\
             <z:c xmlns:y=\"urn:other\"></z:c></a>"
        );
    }

    #[test]
    fn an_undone_default_namespace_is_written_only_when_one_was_rendered() {
        assert_eq!(
            canonical("<a xmlns=\"urn:d\"><b xmlns=\"\"><c xmlns=\"\"/></b></a>"),
            "<a xmlns=\"urn:d\"><b xmlns=\"\"><c></c></b></a>"
        );
        assert_eq!(canonical("<a xmlns=\"\"/>"), "<a></a>");
    }

    #[test]
    fn qualified_attributes_sort_by_namespace_uri_then_local_name() {
        assert_eq!(
            canonical("<a xmlns:p=\"urn:b\" xmlns:q=\"urn:a\" p:x=\"1\" q:y=\"2\" z=\"3\"/>"),
            "<a xmlns:p=\"urn:b\" xmlns:q=\"urn:a\" z=\"3\" q:y=\"2\" p:x=\"1\"></a>"
        );
    }

    #[test]
    fn text_and_attributes_are_escaped_as_the_spec_says() {
        assert_eq!(
            canonical("<a t=\"&lt;&amp;&gt;&quot;'&#x9;&#xA;&#xD;\">&lt;&amp;&gt;\"'&#xD;</a>"),
            "<a t=\"&lt;&amp;>&quot;'&#x9;&#xA;&#xD;\">&lt;&amp;&gt;\"'&#xD;</a>"
        );
    }

    #[test]
    fn comments_go_and_processing_instructions_stay() {
        assert_eq!(
            canonical("<?p  one?><!-- c --><a><!-- c --><?q?></a><?r x?>"),
            "<?p one?>\n<a><?q?></a>\n<?r x?>"
        );
    }

    #[test]
    fn a_left_out_subtree_goes_whole_and_the_whitespace_around_it_stays() {
        let document = parse("<a>\n  <b><c/></b>\n  <d/>\n</a>").unwrap();
        let without_b =
            canonicalize(&document, &|position| Ok(position.element.name == "b")).unwrap();
        assert_eq!(without_b, "<a>\n  \n  <d></d>\n</a>");
    }
}
