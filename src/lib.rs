//! biomed_ner: biomedical named-entity recognition inside PostgreSQL.
//!
//! A thin SQL layer over the `deberta-ner` engine: settings (`gucs`), who may load what
//! (`access`), text in the database's encoding (`encoding`), the backend's model and threads
//! (`backend`), the shared inference service (`service`), watched tables and their queue
//! (`queue`), SQL functions (`api`), the trigger (`trigger`) and error mapping (`error`).

use pgrx::prelude::*;

mod access;
mod api;
mod backend;
mod encoding;
mod error;
mod gucs;
mod queue;
mod service;
mod spi_read;
mod trigger;

pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    service::init();
    queue::init();
    // Safety: called once while loading the library, with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"biomed_ner".as_ptr()) };
}

#[cfg(feature = "pg_test")]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The fixture model, copied where the server can read it by scripts/fixtures-for-postgres.
    fn fixture_model() -> String {
        "/tmp/biomed-ner-fixtures/v3_base_like".into()
    }

    fn use_fixture() {
        Spi::run(&format!("SET biomed_ner.model = '{}'", fixture_model())).unwrap();
    }

    #[pg_test]
    fn offsets_are_characters() {
        use_fixture();
        let ok = Spi::get_one::<bool>(
            "SELECT bool_and(substr(t, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word')
             FROM (VALUES ('Emoji 😷 fever and café crème, 患者发热')) v(t), jsonb_array_elements(biomed_ner(t)) e",
        )
        .unwrap();
        assert_eq!(ok, Some(true));
    }

    #[pg_test]
    fn array_form_equals_scalar_form() {
        use_fixture();
        // Same entities (type, span, word); scores equal up to float32 rounding, since a batch
        // changes the shapes of the matrix products.
        let ok = Spi::get_one::<bool>(
            "WITH a AS (SELECT biomed_ner(ARRAY['Fever and cough.', NULL, '', 'Aspirin 81 mg.']) AS r)
             SELECT r[2] IS NULL AND r[3] = '[]'::jsonb
                AND (SELECT bool_and(x->>'entity_group' = y->>'entity_group' AND x->>'start' = y->>'start'
                                     AND x->>'end' = y->>'end' AND x->>'word' = y->>'word'
                                     AND abs((x->>'score')::float8 - (y->>'score')::float8) < 1e-5)
                     FROM jsonb_array_elements(r[1] || r[4]) WITH ORDINALITY p(x, i)
                     JOIN jsonb_array_elements(biomed_ner('Fever and cough.') || biomed_ner('Aspirin 81 mg.'))
                          WITH ORDINALITY q(y, j) ON i = j)
             FROM a",
        )
        .unwrap();
        assert_eq!(ok, Some(true));
    }

    #[pg_test(error = "model folder \"/nonexistent/model\" does not exist")]
    fn missing_model_folder_is_an_error() {
        Spi::run("SET biomed_ner.model = '/nonexistent/model'").unwrap();
        Spi::run("SELECT biomed_ner('fever')").unwrap();
    }
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
