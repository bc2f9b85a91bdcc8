-- migrate:up
CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    submitted_by text NOT NULL,
    input text NOT NULL,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done')),
    result jsonb,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz
);

-- migrate:down
DROP TABLE jobs;
