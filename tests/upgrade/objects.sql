-- The extension's objects and their definitions, one line each, in a stable order: an updated
-- extension must list exactly what a fresh CREATE EXTENSION does (scripts/regress --upgrade).
SELECT pg_describe_object(d.classid, d.objid, 0) || ': ' || coalesce(CASE d.classid
    WHEN 'pg_proc'::regclass THEN pg_get_functiondef(d.objid)
        || coalesce(array_to_string((SELECT proacl FROM pg_proc WHERE oid = d.objid), ','), '')
    WHEN 'pg_class'::regclass THEN (
        SELECT c.relkind::text || coalesce(array_to_string(c.relacl, ','), '') || ' ' || CASE
            WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid)
            WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid)
            ELSE (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
                      || a.attnotnull::text || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), ', ' ORDER BY a.attnum)
                  FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
                || (SELECT coalesce(string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY 1), '')
                    FROM pg_index i WHERE i.indrelid = c.oid)
        END FROM pg_class c WHERE c.oid = d.objid)
    ELSE '' END, '') AS object
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'biomed_ner')
ORDER BY 1;
SELECT 'config tables: ' || array_to_string(extconfig::regclass[]::text[], ', ') FROM pg_extension WHERE extname = 'biomed_ner';
