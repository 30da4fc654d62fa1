-- tenant_registry: every accountant id that carries cost in the month, checked against the tenant registry
-- (BILLING_TENANTS). Unknown ids keep their cost in tenant_costs under the id they were tagged with; here they are
-- marked, and invoicing holds them out. Written by the `tenant_registry` asset, one billing period at a time.
CREATE TABLE IF NOT EXISTS tenant_registry (
    billing_period      DATE NOT NULL,
    accountant_id       VARCHAR NOT NULL,       -- exactly as in tenant_costs
    currency            VARCHAR NOT NULL,
    status              VARCHAR NOT NULL,       -- known | unknown | lookalike | unattributed
    looks_like          VARCHAR,                -- the known id a look-alike reads as (case, whitespace, confusables)
    cost                DECIMAL(38, 10) NOT NULL,
    tagged_cost         DECIMAL(38, 10) NOT NULL,  -- the part from resources tagged with this id (allocation direct)
    registry_source     VARCHAR NOT NULL        -- where the known ids came from
);
