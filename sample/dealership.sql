-- sample/dealership.sql: a small dealership platform protected by autora_audit.
--
-- Two dealer groups with two stores each, four tenant tables (customers,
-- vehicles, deals, service_appointments) and a few rows per store, each store
-- seeded in its own transaction under its own session context.
--
-- Run it in a fresh database whose server preloads the library
-- (shared_preload_libraries = 'autora_audit'), as a superuser, or, once the
-- extension is installed, as a member of autora_admin and autora_trusted with
-- CREATE on schema public:
--     psql -X -v ON_ERROR_STOP=1 -d dealership -f sample/dealership.sql
-- sample/demo.sql includes it (make demo).

CREATE EXTENSION IF NOT EXISTS autora_audit;

------------------------------------------------------------------------------
-- Tenants: one per store, grouped by dealer group
------------------------------------------------------------------------------
SELECT autora.add_tenant('harbor-ford',   'harbor', 'Harbor Ford, Portland');
SELECT autora.add_tenant('harbor-honda',  'harbor', 'Harbor Honda, Beaverton');
SELECT autora.add_tenant('summit-toyota', 'summit', 'Summit Toyota, Denver');
SELECT autora.add_tenant('summit-subaru', 'summit', 'Summit Subaru, Boulder');

------------------------------------------------------------------------------
-- Tenant tables.  Every table has a tenant_id column and a primary key; the
-- composite foreign keys keep a deal or an appointment in its customer's and
-- vehicle's store.  tenant_id has no default: a NULL is filled in from the
-- session context by autora's stamp trigger.
------------------------------------------------------------------------------
CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    phone       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE vehicles (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    vin         text NOT NULL CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    stock_no    text NOT NULL,
    model_year  smallint NOT NULL,
    make        text NOT NULL,
    model       text NOT NULL,
    trim_level  text,
    color       text,
    odometer_mi integer NOT NULL DEFAULT 0,
    list_price  numeric(10,2),
    status      text NOT NULL DEFAULT 'in_stock'
                CHECK (status IN ('in_stock', 'on_hold', 'sold', 'customer_owned')),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, vin),
    UNIQUE (tenant_id, stock_no)
);

CREATE TABLE deals (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text NOT NULL,
    customer_id    bigint NOT NULL,
    vehicle_id     bigint NOT NULL,
    salesperson    text NOT NULL,
    price          numeric(10,2) NOT NULL CHECK (price >= 0),
    trade_in_value numeric(10,2) NOT NULL DEFAULT 0,
    finance_status text NOT NULL DEFAULT 'cash'
                   CHECK (finance_status IN ('cash', 'submitted', 'approved', 'declined', 'funded')),
    lender         text,
    notes          text,
    internal_cache jsonb,      -- pricing-engine scratch data: not audited (exclude_columns)
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);

CREATE TABLE service_appointments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL,
    customer_id  bigint NOT NULL,
    vehicle_id   bigint NOT NULL,
    scheduled_at timestamptz NOT NULL,
    service      text NOT NULL,
    advisor      text,
    status       text NOT NULL DEFAULT 'booked'
                 CHECK (status IN ('booked', 'checked_in', 'completed', 'cancelled', 'no_show')),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);

------------------------------------------------------------------------------
-- Protection: row level security on the session context (each store sees
-- its own rows), tenant stamping and checking on every write, capture of
-- every change.  After this, every statement on these tables needs a
-- session context (set_context / set_context_trusted) unless the role is a
-- superuser, has BYPASSRLS, or is an auditor reading.
------------------------------------------------------------------------------
SELECT autora.protect('customers', pii_columns => '{email,phone}');
SELECT autora.protect('vehicles');
SELECT autora.protect('deals', exclude_columns => '{internal_cache}');
SELECT autora.protect('service_appointments');

------------------------------------------------------------------------------
-- Seed data: one transaction per store, each under that store's context.
-- set_context_trusted(..., is_local => true) lasts until COMMIT.
------------------------------------------------------------------------------

-- Harbor Ford
BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'seed-loader', 'dealer_admin',
                                  '{"endpoint": "seed", "req": "seed-harbor-ford"}');
INSERT INTO customers (first_name, last_name, email, phone) VALUES
    ('Maria',  'Alvarez', 'maria.alvarez@example.com', '+1-503-555-0142'),
    ('Dwayne', 'Foster',  'dwayne.foster@example.net', '+1-503-555-0177'),
    ('Priya',  'Raman',   'priya.raman@example.org',   '+1-971-555-0108');
INSERT INTO vehicles (vin, stock_no, model_year, make, model, trim_level, color, odometer_mi, list_price) VALUES
    ('1FTFW1E58PFA10231', 'HF-2301', 2023, 'Ford', 'F-150',    'XLT',    'Oxford White', 12,    52995.00),
    ('1FMCU9H67PUA20417', 'HF-2302', 2023, 'Ford', 'Escape',   'SE',     'Carbonized Gray', 8, 31480.00),
    ('3FMCR9B63NRD30982', 'HF-2215', 2022, 'Ford', 'Bronco Sport', 'Big Bend', 'Area 51', 18240, 27900.00);
INSERT INTO deals (customer_id, vehicle_id, salesperson, price, finance_status, lender, notes, internal_cache)
SELECT c.id, v.id, 'Tom Becker', 51250.00, 'submitted', 'Ford Credit',
       'Customer wants bedliner added before delivery.', '{"quote_rev": 3, "margin_calc": "v2"}'
  FROM customers c, vehicles v
 WHERE c.email = 'maria.alvarez@example.com' AND v.vin = '1FTFW1E58PFA10231';
UPDATE vehicles SET status = 'on_hold' WHERE vin = '1FTFW1E58PFA10231';
INSERT INTO service_appointments (customer_id, vehicle_id, scheduled_at, service, advisor)
SELECT c.id, v.id, '2025-06-03 08:30:00-07', '10k mile service', 'Lena Ortiz'
  FROM customers c, vehicles v
 WHERE c.email = 'priya.raman@example.org' AND v.vin = '3FMCR9B63NRD30982';
COMMIT;

-- Harbor Honda
BEGIN;
SELECT autora.set_context_trusted('harbor-honda', 'seed-loader', 'dealer_admin',
                                  '{"endpoint": "seed", "req": "seed-harbor-honda"}');
INSERT INTO customers (first_name, last_name, email, phone) VALUES
    ('Kenji', 'Watanabe', 'kenji.w@example.com',        '+1-503-555-0119'),
    ('Alice', 'Nguyen',   'alice.nguyen@example.net',   '+1-503-555-0163');
INSERT INTO vehicles (vin, stock_no, model_year, make, model, trim_level, color, odometer_mi, list_price) VALUES
    ('2HGFE2F52PH504118', 'HH-3107', 2023, 'Honda', 'Civic', 'Sport', 'Rallye Red', 5,  26345.00),
    ('5J6RS4H79PL001562', 'HH-3112', 2023, 'Honda', 'CR-V',  'EX-L',  'Meteorite Gray', 11, 36950.00);
INSERT INTO deals (customer_id, vehicle_id, salesperson, price, finance_status, notes)
SELECT c.id, v.id, 'Rosa Delgado', 25990.00, 'cash', 'Paid by cashier''s check.'
  FROM customers c, vehicles v
 WHERE c.email = 'kenji.w@example.com' AND v.vin = '2HGFE2F52PH504118';
UPDATE vehicles SET status = 'sold' WHERE vin = '2HGFE2F52PH504118';
INSERT INTO service_appointments (customer_id, vehicle_id, scheduled_at, service, advisor)
SELECT c.id, v.id, '2025-06-04 10:00:00-07', 'Pre-delivery inspection', 'Sam Park'
  FROM customers c, vehicles v
 WHERE c.email = 'kenji.w@example.com' AND v.vin = '2HGFE2F52PH504118';
COMMIT;

-- Summit Toyota
BEGIN;
SELECT autora.set_context_trusted('summit-toyota', 'seed-loader', 'dealer_admin',
                                  '{"endpoint": "seed", "req": "seed-summit-toyota"}');
INSERT INTO customers (first_name, last_name, email, phone) VALUES
    ('Grace',  'Okafor',  'grace.okafor@example.com', '+1-303-555-0131'),
    ('Luis',   'Herrera', 'luis.herrera@example.org', '+1-720-555-0186'),
    ('Hannah', 'Schmidt', NULL,                       '+1-303-555-0150');
INSERT INTO vehicles (vin, stock_no, model_year, make, model, trim_level, color, odometer_mi, list_price) VALUES
    ('4T1C11AK2PU771034', 'ST-5520', 2023, 'Toyota', 'Camry',  'LE',   'Celestial Silver', 9, 27815.00),
    ('2T3P1RFV8PW356121', 'ST-5533', 2023, 'Toyota', 'RAV4',   'XLE',  'Blueprint',       14, 32975.00),
    ('5TFLA5DB0NX018845', 'ST-5411', 2022, 'Toyota', 'Tundra', 'SR5',  'Magnetic Gray',  21030, 44500.00);
INSERT INTO deals (customer_id, vehicle_id, salesperson, price, trade_in_value, finance_status, lender, notes)
SELECT c.id, v.id, 'Marcus Lee', 32500.00, 9500.00, 'approved', 'Toyota Financial Services',
       'Trade-in: 2016 Corolla, 88k mi.'
  FROM customers c, vehicles v
 WHERE c.email = 'grace.okafor@example.com' AND v.vin = '2T3P1RFV8PW356121';
INSERT INTO service_appointments (customer_id, vehicle_id, scheduled_at, service, advisor)
SELECT c.id, v.id, '2025-06-05 07:45:00-06', 'Tire rotation', 'Dana White'
  FROM customers c, vehicles v
 WHERE c.email = 'luis.herrera@example.org' AND v.vin = '5TFLA5DB0NX018845';
COMMIT;

-- Summit Subaru
BEGIN;
SELECT autora.set_context_trusted('summit-subaru', 'seed-loader', 'dealer_admin',
                                  '{"endpoint": "seed", "req": "seed-summit-subaru"}');
INSERT INTO customers (first_name, last_name, email, phone) VALUES
    ('Owen',  'Mitchell', 'owen.mitchell@example.com', '+1-303-555-0194'),
    ('Sofia', 'Rossi',    'sofia.rossi@example.net',   '+1-720-555-0122');
INSERT INTO vehicles (vin, stock_no, model_year, make, model, trim_level, color, odometer_mi, list_price) VALUES
    ('JF2SKAEC4PH412877', 'SS-7702', 2023, 'Subaru', 'Forester', 'Premium', 'Autumn Green', 7, 31195.00),
    ('4S4BTGND1P3170266', 'SS-7715', 2023, 'Subaru', 'Outback',  'Limited', 'Crystal Black', 10, 38745.00);
INSERT INTO deals (customer_id, vehicle_id, salesperson, price, finance_status, lender, notes)
SELECT c.id, v.id, 'Jade Thompson', 30400.00, 'funded', 'Subaru Motors Finance', NULL
  FROM customers c, vehicles v
 WHERE c.email = 'owen.mitchell@example.com' AND v.vin = 'JF2SKAEC4PH412877';
UPDATE vehicles SET status = 'sold' WHERE vin = 'JF2SKAEC4PH412877';
INSERT INTO service_appointments (customer_id, vehicle_id, scheduled_at, service, advisor)
SELECT c.id, v.id, '2025-06-06 09:15:00-06', 'Oil change', 'Chris Young'
  FROM customers c, vehicles v
 WHERE c.email = 'owen.mitchell@example.com' AND v.vin = 'JF2SKAEC4PH412877';
COMMIT;
