-- The tables of DESIGN.md "Warehouse". Files are partitioned by time, never by subaccount, and
-- sorted by subaccount inside each file so that per-tenant reads stay fast.

-- health_minute grows to the full HealthWindow of voicepulse/messages.py. Rows written before
-- this migration keep their counts; the new columns are NULL for them.
ALTER TABLE health_minute ADD COLUMN parent_account_sid VARCHAR;
ALTER TABLE health_minute ADD COLUMN window_end TIMESTAMP;
ALTER TABLE health_minute ADD COLUMN completed BIGINT;
ALTER TABLE health_minute ADD COLUMN busy BIGINT;
ALTER TABLE health_minute ADD COLUMN no_answer BIGINT;
ALTER TABLE health_minute ADD COLUMN failed BIGINT;
ALTER TABLE health_minute ADD COLUMN canceled BIGINT;
ALTER TABLE health_minute ADD COLUMN unknown BIGINT;
ALTER TABLE health_minute ADD COLUMN talk_seconds BIGINT;
ALTER TABLE health_minute ADD COLUMN short_calls BIGINT;
ALTER TABLE health_minute ADD COLUMN calls_created BIGINT;
ALTER TABLE health_minute ADD COLUMN cps_per_second BIGINT[];
ALTER TABLE health_minute ADD COLUMN cps_peak BIGINT;
ALTER TABLE health_minute ADD COLUMN cps_limit DOUBLE;
ALTER TABLE health_minute ADD COLUMN queue_time_count BIGINT;
ALTER TABLE health_minute ADD COLUMN queue_time_sum_ms BIGINT;
ALTER TABLE health_minute ADD COLUMN queue_time_max_ms BIGINT;
ALTER TABLE health_minute ADD COLUMN queue_time_hist MAP(INTEGER, BIGINT);
ALTER TABLE health_minute ADD COLUMN trunk_cps_rejections BIGINT;
ALTER TABLE health_minute ADD COLUMN from_numbers MAP(VARCHAR, BIGINT);
ALTER TABLE health_minute ADD COLUMN attestation MAP(VARCHAR, BIGINT);
ALTER TABLE health_minute ADD COLUMN debugger_errors MAP(VARCHAR, BIGINT);
ALTER TABLE health_minute ADD COLUMN debugger_warnings MAP(VARCHAR, BIGINT);
ALTER TABLE health_minute ADD COLUMN late_events BIGINT;
ALTER TABLE health_minute SET SORTED BY (account_sid, window_start);

-- One row per call: the highest version of its call fact.
CREATE TABLE calls (
    call_sid VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    call_time TIMESTAMP NOT NULL,  -- created_at, else answered_at, ended_at, received_at
    status VARCHAR NOT NULL,
    terminal BOOLEAN NOT NULL,
    answered BOOLEAN NOT NULL,
    direction VARCHAR,
    direction_group VARCHAR,
    from_number VARCHAR,
    to_number VARCHAR,
    created_at TIMESTAMP,
    answered_at TIMESTAMP,
    ended_at TIMESTAMP,
    last_event_at TIMESTAMP,
    call_duration_s BIGINT,
    billed_minutes BIGINT,
    queue_time_ms BIGINT,
    pdd_ms BIGINT,
    cost DECIMAL(18, 6),
    price_unit VARCHAR,
    call_type VARCHAR,
    sip_response_code BIGINT,
    last_sip_response_num BIGINT,
    disconnected_by VARCHAR,
    stir_verstat VARCHAR,
    attestation VARCHAR,
    answered_by VARCHAR,
    parent_call_sid VARCHAR,
    trunk_sid VARCHAR,
    insights_state VARCHAR,
    tags VARCHAR[],
    closed_by_timeout BOOLEAN,
    trunk_cps_rejection BOOLEAN,
    late BOOLEAN,
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE calls SET PARTITIONED BY (year(call_time), month(call_time));
ALTER TABLE calls SET SORTED BY (account_sid, call_time);

-- Raw status callbacks, one row per envelope id (CallSid:SequenceNumber, ...).
CREATE TABLE call_events (
    event_id VARCHAR NOT NULL,
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    call_sid VARCHAR NOT NULL,
    event_time TIMESTAMP NOT NULL,  -- the callback's Timestamp, else received_at
    call_status VARCHAR NOT NULL,
    direction VARCHAR,
    sequence_number BIGINT,
    timestamp TIMESTAMP,
    call_duration BIGINT,
    sip_response_code BIGINT,
    stir_verstat VARCHAR,
    parent_call_sid VARCHAR,
    flags VARCHAR[],
    raw JSON,
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE call_events SET PARTITIONED BY (year(event_time), month(event_time));
ALTER TABLE call_events SET SORTED BY (account_sid, event_time);

CREATE TABLE debugger_events (
    sid VARCHAR NOT NULL,
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    event_time TIMESTAMP NOT NULL,  -- the event's Timestamp, else received_at
    level VARCHAR,
    error_code VARCHAR,
    resource_sid VARCHAR,
    service_sid VARCHAR,
    more_info VARCHAR,
    payload JSON,
    flags VARCHAR[],
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE debugger_events SET PARTITIONED BY (year(event_time), month(event_time));
ALTER TABLE debugger_events SET SORTED BY (account_sid, event_time);

-- Alert state changes (firing, resolved), one row per envelope id.
CREATE TABLE alerts (
    alert_id VARCHAR NOT NULL,
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    changed_at TIMESTAMP NOT NULL,
    rule VARCHAR,
    state VARCHAR NOT NULL,
    severity VARCHAR,
    direction_group VARCHAR,
    window_start TIMESTAMP,
    value DOUBLE,
    threshold DOUBLE,
    message VARCHAR,
    detail JSON,
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE alerts SET PARTITIONED BY (year(changed_at), month(changed_at));
ALTER TABLE alerts SET SORTED BY (account_sid, changed_at);

-- Twilio's usage records per subaccount, category and day; a later pull replaces an earlier one.
CREATE TABLE usage_records (
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    category VARCHAR NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE,
    count BIGINT,
    usage DECIMAL(18, 6),
    usage_unit VARCHAR,
    cost DECIMAL(18, 6),
    price_unit VARCHAR,
    description VARCHAR,
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE usage_records SET PARTITIONED BY (year(start_date));
ALTER TABLE usage_records SET SORTED BY (account_sid, start_date);

-- Call resources (Api v2010): the price once Twilio rates the call, queue time, duration.
CREATE TABLE call_resources (
    call_sid VARCHAR NOT NULL,
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    call_time TIMESTAMP NOT NULL,  -- date_created, else start_time, else received_at
    status VARCHAR,
    direction VARCHAR,
    from_number VARCHAR,
    to_number VARCHAR,
    queue_time_ms BIGINT,
    duration_s BIGINT,
    cost DECIMAL(18, 6),
    price_unit VARCHAR,
    date_created TIMESTAMP,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    parent_call_sid VARCHAR,
    trunk_sid VARCHAR,
    origin VARCHAR,
    rated BOOLEAN NOT NULL,
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE call_resources SET PARTITIONED BY (year(call_time), month(call_time));
ALTER TABLE call_resources SET SORTED BY (account_sid, call_time);

-- Voice Insights call summaries: the complete one replaces the partial one.
CREATE TABLE insights_summaries (
    call_sid VARCHAR NOT NULL,
    account_sid VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    call_time TIMESTAMP NOT NULL,  -- created_time, else start_time, else received_at
    processing_state VARCHAR NOT NULL,
    state_rank INTEGER NOT NULL,  -- 1 partial, 2 complete
    call_type VARCHAR,
    call_state VARCHAR,
    direction VARCHAR,
    answered_by VARCHAR,
    created_time TIMESTAMP,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    duration_s BIGINT,
    connect_duration_s BIGINT,
    queue_time_ms BIGINT,
    pdd_ms BIGINT,
    last_sip_response_num BIGINT,
    disconnected_by VARCHAR,
    from_country VARCHAR,
    to_country VARCHAR,
    tags VARCHAR[],
    received_at TIMESTAMP NOT NULL
);
ALTER TABLE insights_summaries SET PARTITIONED BY (year(call_time), month(call_time));
ALTER TABLE insights_summaries SET SORTED BY (account_sid, call_time);

-- The subaccounts, from the tenants file, refreshed when the sink starts.
CREATE TABLE tenants (
    account_sid VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    parent_account_sid VARCHAR,
    cps_limit DOUBLE NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
