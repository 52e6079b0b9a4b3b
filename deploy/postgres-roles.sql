-- A database and two roles for Dispatcher on an external PostgreSQL (15 or later; tested on 15 and 18).
--
--   psql -v ON_ERROR_STOP=1 -v owner_password='...' -v app_password='...' \
--        "postgresql://postgres@db.internal/postgres" -f deploy/postgres-roles.sql
--
-- dispatcher_owner owns the schema and runs the migrations (`dispatcher migrate`, at each
-- upgrade); dispatcher_app is what every `dispatcher serve` connects as: it reads and writes
-- rows and may not create, alter or drop anything. Names may be changed with -v db=...
-- -v owner=... -v app=...; run it as a superuser (or a role with CREATEROLE and CREATEDB).
-- Then:
--   migrations: DISPATCHER_DATABASE_URL=postgresql://dispatcher_owner:...@db/dispatcher dispatcher migrate
--   instances:  DISPATCHER_DATABASE_URL=postgresql://dispatcher_app:...@db/dispatcher dispatcher serve

\if :{?db}
\else
  \set db dispatcher
\endif
\if :{?owner}
\else
  \set owner dispatcher_owner
\endif
\if :{?app}
\else
  \set app dispatcher_app
\endif
\if :{?owner_password}
\else
  \echo 'pass -v owner_password=... and -v app_password=...'
  \quit
\endif

CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"db" OWNER :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app";

\connect :"db"

-- Only the owner creates objects in the schema (PostgreSQL 15+ already denies PUBLIC).
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- Every table and sequence the owner's migrations create, now and in later versions, is
-- readable and writable by the app role: nothing to re-grant after an upgrade.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
-- Tables that already exist (running this again after migrating).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
