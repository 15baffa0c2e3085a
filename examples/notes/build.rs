//! Bundle `templates/` into the component (rebuilt when a template changes).
fn main() {
    minijinja_embed::embed_templates!("templates");
}
