//! Bundle the templates into the component.
fn main() {
    minijinja_embed::embed_templates!("templates");
}
