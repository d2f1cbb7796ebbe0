//! biomed_ner: biomedical named-entity recognition inside PostgreSQL.
//!
//! A thin SQL layer over the `deberta-ner` engine: settings (`gucs`), the backend's model and
//! threads (`backend`), SQL functions (`api`), the trigger (`trigger`) and error mapping
//! (`error`).

use pgrx::prelude::*;

mod api;
mod backend;
mod error;
mod gucs;
mod trigger;

pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    // Safety: called once while loading the library, with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"biomed_ner".as_ptr()) };
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn fixture_model() -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/v3_base_like");
        dir.to_str().unwrap().to_string()
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
        let ok = Spi::get_one::<bool>(
            "SELECT (biomed_ner(ARRAY['Fever and cough.', NULL, '', 'Aspirin 81 mg.']))
                 = ARRAY[biomed_ner('Fever and cough.'), NULL, '[]'::jsonb, biomed_ner('Aspirin 81 mg.')]",
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
