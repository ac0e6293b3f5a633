//! A small in-memory XML tree, read with `quick-xml`, for what this crate does with XML it
//! did not write itself: canonicalising a document for its hash ([`crate::c14n`]), and
//! reading the stamp, the certificate and the QR out of a signed document ([`crate::read`]).
//!
//! The tree keeps exactly what canonical XML needs and nothing else: element names as
//! written (prefix and local part), namespace declarations and other attributes apart,
//! attribute values normalised as the XML specification says (§3.3.3), text with line ends
//! normalised (§2.11) and references resolved, and processing instructions. Comments are
//! dropped (ZATCA canonicalises without comments). Each element also remembers where it sits
//! in the source text, because ZATCA digests its signed properties from the text as written
//! (see [`crate::stamp::signed_properties_digest`]).
//!
//! Refused rather than guessed at: a document type declaration (an internal subset could
//! declare entities, and no ZATCA document has one), an undeclared prefix, an unknown entity,
//! a document larger than [`MAX_XML_BYTES`] or nested deeper than [`MAX_DEPTH`].

use std::collections::BTreeMap;
use std::ops::Range;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use thiserror::Error;

/// The largest XML document read. ZATCA's API refuses documents far smaller than this (a
/// few megabytes); the limit bounds the memory of a tree built from untrusted input.
pub const MAX_XML_BYTES: usize = 16 * 1024 * 1024;

/// The deepest element nesting read. A signed UBL invoice nests about a dozen levels (the
/// XAdES certificate digest is the deepest); the limit keeps recursion over the tree bounded.
pub const MAX_DEPTH: usize = 64;

/// The namespace the `xml` prefix is bound to by definition.
pub const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// What can be wrong with XML handed to this crate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// The text is not well-formed XML.
    #[error("malformed XML at byte {position}: {reason}")]
    Malformed { position: u64, reason: String },
    /// The document is larger than [`MAX_XML_BYTES`].
    #[error("the XML is {size_bytes} bytes; at most {MAX_XML_BYTES} are read")]
    TooLarge { size_bytes: usize },
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("elements nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The document has a DOCTYPE; none of ZATCA's documents do, and entities are not expanded.
    #[error("a document type declaration is not accepted")]
    DocumentTypeDeclaration,
    /// A prefix is used that no ancestor declares.
    #[error("the prefix {prefix:?} is not declared")]
    UndeclaredPrefix { prefix: String },
    /// A reference to an entity other than the five XML predefines.
    #[error("the entity &{name}; is not one of XML's predefined entities")]
    UnknownEntity { name: String },
    /// The document has no root element, or text outside it.
    #[error("the document has no single root element")]
    NoRootElement,
    /// An element the caller needs is not in the document.
    #[error("the document has no {path}")]
    MissingElement { path: String },
}

/// An element: its qualified name, its namespace declarations and attributes, its children,
/// and where it was in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The name as written, `prefix:local` or `local`.
    pub name: String,
    /// Declarations on this element, prefix (`""` for the default namespace) to URI.
    pub namespace_declarations: BTreeMap<String, String>,
    /// Other attributes, qualified name and normalised value, in source order.
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// The element's bytes in the source, from `<` of its start tag to `>` of its end tag.
    pub source_span: Range<usize>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data, references resolved, line ends normalised.
    Text(String),
    /// A processing instruction: its target and the rest.
    ProcessingInstruction(String),
}

/// A parsed document: the root element and the processing instructions around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub before_root: Vec<String>,
    pub root: Element,
    pub after_root: Vec<String>,
}

impl Element {
    /// The prefix of this element's name, `""` when it has none.
    pub fn prefix(&self) -> &str {
        split_name(&self.name).0
    }

    /// The local part of this element's name.
    pub fn local_name(&self) -> &str {
        split_name(&self.name).1
    }

    /// The child elements.
    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|child| match child {
            Node::Element(element) => Some(element),
            _ => None,
        })
    }

    /// The text directly inside this element (its text children joined).
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|child| match child {
                Node::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The value of the attribute named exactly `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(attribute, _)| attribute == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Splits `prefix:local` into its parts; a name without a colon has the prefix `""`.
pub fn split_name(name: &str) -> (&str, &str) {
    name.split_once(':').unwrap_or(("", name))
}

/// The namespaces in scope at some element: prefix to URI, `""` for the default namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(BTreeMap<String, String>);

impl Default for Scope {
    fn default() -> Self {
        Scope(BTreeMap::from([(
            "xml".to_owned(),
            XML_NAMESPACE.to_owned(),
        )]))
    }
}

impl Scope {
    /// The scope inside `element`, given the scope around it.
    pub fn enter(&self, element: &Element) -> Scope {
        let mut inner = self.clone();
        for (prefix, uri) in &element.namespace_declarations {
            inner.bind(prefix.clone(), uri.clone());
        }
        inner
    }

    /// The URI bound to `prefix`, if any (the default namespace for `""`).
    pub fn get(&self, prefix: &str) -> Option<&str> {
        self.0.get(prefix).map(String::as_str)
    }

    /// Binds `prefix` to `uri` (an empty `uri` for `""` undoes the default namespace).
    pub fn bind(&mut self, prefix: String, uri: String) {
        if prefix.is_empty() && uri.is_empty() {
            self.0.remove("");
        } else {
            self.0.insert(prefix, uri);
        }
    }

    /// The URI bound to `prefix`; the default namespace for `""` (empty when there is none).
    pub fn resolve(&self, prefix: &str) -> Result<&str, XmlError> {
        match self.0.get(prefix) {
            Some(uri) => Ok(uri),
            None if prefix.is_empty() => Ok(""),
            None => Err(XmlError::UndeclaredPrefix {
                prefix: prefix.to_owned(),
            }),
        }
    }

    /// The URI of the namespace `element` is in (within this scope, which is the element's
    /// own, i.e. already entered).
    pub fn namespace_of(&self, element: &Element) -> Result<&str, XmlError> {
        self.resolve(element.prefix())
    }
}

/// Parses `xml` into a tree.
pub fn parse(xml: &str) -> Result<Document, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge {
            size_bytes: xml.len(),
        });
    }
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<Element> = Vec::new();
    let mut before_root = Vec::new();
    let mut after_root = Vec::new();
    let mut root = None;
    loop {
        let event_start = position(&reader);
        let event = reader
            .read_event()
            .map_err(|error| malformed(&reader, error))?;
        let event_end = position(&reader);
        match event {
            Event::Start(start) => {
                if open.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                open.push(element_from(&reader, &start, event_start..event_end)?);
            }
            Event::Empty(start) => {
                if open.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let element = element_from(&reader, &start, event_start..event_end)?;
                close(element, &mut open, &mut root)?;
            }
            Event::End(_) => {
                let mut element = open.pop().ok_or(XmlError::NoRootElement)?;
                element.source_span.end = event_end;
                close(element, &mut open, &mut root)?;
            }
            Event::Text(text) => {
                let text = text
                    .xml10_content()
                    .map_err(|error| malformed(&reader, error))?;
                push_text(&mut open, &text)?;
            }
            Event::GeneralRef(reference) => {
                let text = match reference
                    .resolve_char_ref()
                    .map_err(|error| malformed(&reader, error))?
                {
                    Some(character) => character.to_string(),
                    None => {
                        let name = reference
                            .decode()
                            .map_err(|error| malformed(&reader, error))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::UnknownEntity {
                                name: name.to_string(),
                            })?
                            .to_owned()
                    }
                };
                push_text(&mut open, &text)?;
            }
            Event::CData(data) => {
                let text = data.decode().map_err(|error| malformed(&reader, error))?;
                push_text(&mut open, &normalize_line_ends(&text))?;
            }
            Event::PI(instruction) => {
                let text = String::from_utf8_lossy(&instruction).into_owned();
                match open.last_mut() {
                    Some(parent) => parent.children.push(Node::ProcessingInstruction(text)),
                    None if root.is_none() => before_root.push(text),
                    None => after_root.push(text),
                }
            }
            Event::DocType(_) => return Err(XmlError::DocumentTypeDeclaration),
            Event::Decl(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !open.is_empty() {
        return Err(XmlError::Malformed {
            position: xml.len() as u64,
            reason: "the document ends inside an element".to_owned(),
        });
    }
    let root = root.ok_or(XmlError::NoRootElement)?;
    Ok(Document {
        before_root,
        root,
        after_root,
    })
}

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn malformed(reader: &Reader<&[u8]>, error: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        position: reader.error_position(),
        reason: error.to_string(),
    }
}

fn element_from(
    reader: &Reader<&[u8]>,
    start: &BytesStart<'_>,
    span: Range<usize>,
) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|error| malformed(reader, error))?
        .to_owned();
    let mut namespace_declarations = BTreeMap::new();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute: Attribute<'_> = attribute.map_err(|error| malformed(reader, error))?;
        let key = std::str::from_utf8(attribute.key.as_ref())
            .map_err(|error| malformed(reader, error))?
            .to_owned();
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|error| malformed(reader, error))?
            .into_owned();
        if key == "xmlns" {
            namespace_declarations.insert(String::new(), value);
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            namespace_declarations.insert(prefix.to_owned(), value);
        } else {
            attributes.push((key, value));
        }
    }
    Ok(Element {
        name,
        namespace_declarations,
        attributes,
        children: Vec::new(),
        source_span: span,
    })
}

fn close(
    element: Element,
    open: &mut [Element],
    root: &mut Option<Element>,
) -> Result<(), XmlError> {
    match open.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None if root.is_none() => *root = Some(element),
        None => return Err(XmlError::NoRootElement),
    }
    Ok(())
}

/// Appends text to the open element, merging with a text node just before it (a reference
/// splits character data into several events); whitespace outside the root is dropped, and
/// anything else outside it is an error.
fn push_text(open: &mut [Element], text: &str) -> Result<(), XmlError> {
    let Some(parent) = open.last_mut() else {
        return if text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
            Ok(())
        } else {
            Err(XmlError::NoRootElement)
        };
    };
    if let Some(Node::Text(previous)) = parent.children.last_mut() {
        previous.push_str(text);
    } else {
        parent.children.push(Node::Text(text.to_owned()));
    }
    Ok(())
}

/// XML's end-of-line handling (§2.11): `\r\n` and a lone `\r` become `\n`.
fn normalize_line_ends(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The first element at `path` below `element`, each step a `prefix:local` name as written.
pub fn find<'a>(element: &'a Element, path: &[&str]) -> Option<&'a Element> {
    match path.split_first() {
        None => Some(element),
        Some((step, rest)) => element
            .child_elements()
            .filter(|child| child.name == *step)
            .find_map(|child| find(child, rest)),
    }
}

/// The first element named `name` anywhere below `element` (depth first, document order).
pub fn find_descendant<'a>(element: &'a Element, name: &str) -> Option<&'a Element> {
    element.child_elements().find_map(|child| {
        if child.name == name {
            Some(child)
        } else {
            find_descendant(child, name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_resolved_and_line_ends_normalised() {
        let document = parse("<a>x &amp; &#x41;\r\ny<![CDATA[<z>\r]]></a>").unwrap();
        assert_eq!(document.root.text(), "x & A\ny<z>\n");
    }

    #[test]
    fn attribute_values_are_normalised_but_character_references_kept() {
        let document = parse("<a b=\"1\t2\n3&#xA;4\"/>").unwrap();
        assert_eq!(document.root.attribute("b"), Some("1 2 3\n4"));
    }

    #[test]
    fn a_doctype_is_refused() {
        assert_eq!(
            parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>"),
            Err(XmlError::DocumentTypeDeclaration)
        );
    }

    #[test]
    fn an_unknown_entity_is_refused() {
        assert!(matches!(
            parse("<a>&nbsp;</a>"),
            Err(XmlError::UnknownEntity { .. }) | Err(XmlError::Malformed { .. })
        ));
    }

    #[test]
    fn mismatched_tags_are_malformed() {
        assert!(matches!(
            parse("<a><b></a></b>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(parse("<a>"), Err(XmlError::Malformed { .. })));
        assert_eq!(parse("  "), Err(XmlError::NoRootElement));
        assert_eq!(parse("<a/><b/>"), Err(XmlError::NoRootElement));
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
        let fine = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn each_element_knows_its_source_span() {
        let xml = "<a><b x=\"1\">t</b><c/></a>";
        let document = parse(xml).unwrap();
        let b = find(&document.root, &["b"]).unwrap();
        assert_eq!(&xml[b.source_span.clone()], "<b x=\"1\">t</b>");
        let c = find(&document.root, &["c"]).unwrap();
        assert_eq!(&xml[c.source_span.clone()], "<c/>");
        assert_eq!(&xml[document.root.source_span.clone()], xml);
    }
}
