#!/usr/bin/env bash
# Least privilege in one PostgreSQL database (run once by the postgres image at first start,
# or by hand against any server: PGHOST/PGPORT/POSTGRES_USER/POSTGRES_DB and the passwords).
#
#   shopstack_migrator  owns the schemas auth, users, catalog, worker: runs the migrations (DDL)
#   shopstack_<service> can only read and write the tables of its own schema (no DDL, no
#                       access to another service's schema)
# Idempotent: re-running updates the passwords and grants.
set -euo pipefail

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=shopstack}"
: "${DB_SCHEMAS:=auth users catalog worker}"

role_args=(-v "migrator_pw=${MIGRATOR_DB_PASSWORD:?set MIGRATOR_DB_PASSWORD}")
for schema in $DB_SCHEMAS; do
    var="${schema^^}_DB_PASSWORD"
    role_args+=(-v "${schema}_pw=${!var:?set ${var}}")
done

{
    cat <<'SQL'
SELECT format('CREATE ROLE shopstack_migrator LOGIN PASSWORD %L', :'migrator_pw')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shopstack_migrator') \gexec
ALTER ROLE shopstack_migrator LOGIN PASSWORD :'migrator_pw';
SELECT format('GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %I TO shopstack_migrator', current_database()) \gexec
SQL
    for schema in $DB_SCHEMAS; do
        cat <<SQL
SELECT format('CREATE ROLE shopstack_${schema} LOGIN PASSWORD %L', :'${schema}_pw')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shopstack_${schema}') \gexec
ALTER ROLE shopstack_${schema} LOGIN PASSWORD :'${schema}_pw';
-- The service finds its own tables first; it has no rights elsewhere anyway.
ALTER ROLE shopstack_${schema} SET search_path = "${schema}";
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO shopstack_${schema}', current_database()) \gexec
CREATE SCHEMA IF NOT EXISTS "${schema}" AUTHORIZATION shopstack_migrator;
ALTER SCHEMA "${schema}" OWNER TO shopstack_migrator;
REVOKE ALL ON SCHEMA "${schema}" FROM PUBLIC;
GRANT USAGE ON SCHEMA "${schema}" TO shopstack_${schema};
-- Tables the migrator creates later are usable by the service at once.
ALTER DEFAULT PRIVILEGES FOR ROLE shopstack_migrator IN SCHEMA "${schema}"
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO shopstack_${schema};
ALTER DEFAULT PRIVILEGES FOR ROLE shopstack_migrator IN SCHEMA "${schema}"
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO shopstack_${schema};
-- And those that already exist (a re-run after migrations).
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA "${schema}" TO shopstack_${schema};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "${schema}" TO shopstack_${schema};
SQL
    done
    # Nobody but the owner creates objects in public.
    echo 'REVOKE CREATE ON SCHEMA public FROM PUBLIC;'
} | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "${role_args[@]}"
