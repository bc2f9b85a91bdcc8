-- migrate:up
CREATE TABLE users (
    username text PRIMARY KEY,
    password_hash text NOT NULL
);

CREATE TABLE items (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE files (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE files;
DROP TABLE items;
DROP TABLE users;
