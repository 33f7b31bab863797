-- EC-CUBE 4.2 database schema (PostgreSQL) for the tables kizuna's EC-CUBE source reads, with EC-CUBE's
-- own master data for them. Used by the tests and the demo to build a real EC-CUBE database; the source
-- itself never writes to a shop's database.
--
-- Origin: the EC-CUBE/ec-cube repository, EC-CUBE 4.2.3 (branch 4.2, commit
-- daed16e5da3c6847b232af24b06d76d55d8cbd42): the Doctrine mappings in src/Eccube/Entity/ (Customer, Order,
-- OrderItem, Shipping, Product, ProductClass, their traits, Master/*) turned into DDL the way Doctrine DBAL 3
-- does on PostgreSQL (`bin/console doctrine:schema:create`): integer ids with IDENTITY -> SERIAL, string ->
-- VARCHAR(length or 255), decimal -> NUMERIC(p, s), datetimetz -> TIMESTAMP(0) WITH TIME ZONE (EC-CUBE stores
-- it in UTC), boolean -> BOOLEAN, the `discriminator_type` column of every single-table-inheritance entity,
-- an index per association (IDX_<crc32 of table and column>) and the named indexes of each @ORM\Table.
-- The master data is src/Eccube/Resource/doctrine/import_csv/ja/<table>.csv of the same commit. The 4.3
-- branch (commit 778652134dab71f601a0f6b0031a356306ef3d6d, VERSION 4.3.0-alpha) maps these tables identically.
--
-- Only the tables kizuna reads are here: foreign keys to tables that are not (mtb_job, dtb_payment,
-- dtb_delivery, ...) are left out, their columns are kept. Plugins' columns are in their own files
-- (plugin_mailmagazine_postgres.sql).

CREATE TABLE dtb_customer (
  id SERIAL NOT NULL,
  name01 VARCHAR(255) NOT NULL,
  name02 VARCHAR(255) NOT NULL,
  kana01 VARCHAR(255) DEFAULT NULL,
  kana02 VARCHAR(255) DEFAULT NULL,
  company_name VARCHAR(255) DEFAULT NULL,
  postal_code VARCHAR(8) DEFAULT NULL,
  addr01 VARCHAR(255) DEFAULT NULL,
  addr02 VARCHAR(255) DEFAULT NULL,
  email VARCHAR(255) NOT NULL,
  phone_number VARCHAR(14) DEFAULT NULL,
  birth TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  password VARCHAR(255) NOT NULL,
  salt VARCHAR(255) DEFAULT NULL,
  secret_key VARCHAR(255) NOT NULL,
  first_buy_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  last_buy_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  buy_times NUMERIC(10, 0) DEFAULT 0,
  buy_total NUMERIC(12, 2) DEFAULT 0,
  note VARCHAR(4000) DEFAULT NULL,
  reset_key VARCHAR(255) DEFAULT NULL,
  reset_expire TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  point NUMERIC(12, 0) DEFAULT 0 NOT NULL,
  create_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  update_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  customer_status_id SMALLINT DEFAULT NULL,
  sex_id SMALLINT DEFAULT NULL,
  job_id SMALLINT DEFAULT NULL,
  country_id SMALLINT DEFAULT NULL,
  pref_id SMALLINT DEFAULT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE INDEX IDX_8298BBE3C00AF8A7 ON dtb_customer (customer_status_id);
CREATE INDEX IDX_8298BBE35A2DB2A0 ON dtb_customer (sex_id);
CREATE INDEX IDX_8298BBE3BE04EA9 ON dtb_customer (job_id);
CREATE INDEX IDX_8298BBE3F92F3E70 ON dtb_customer (country_id);
CREATE INDEX IDX_8298BBE3E171EF5F ON dtb_customer (pref_id);
CREATE UNIQUE INDEX secret_key ON dtb_customer (secret_key);
CREATE INDEX dtb_customer_buy_times_idx ON dtb_customer (buy_times);
CREATE INDEX dtb_customer_buy_total_idx ON dtb_customer (buy_total);
CREATE INDEX dtb_customer_create_date_idx ON dtb_customer (create_date);
CREATE INDEX dtb_customer_update_date_idx ON dtb_customer (update_date);
CREATE INDEX dtb_customer_last_buy_date_idx ON dtb_customer (last_buy_date);
CREATE INDEX dtb_customer_email_idx ON dtb_customer (email);
CREATE TABLE dtb_order (
  id SERIAL NOT NULL,
  pre_order_id VARCHAR(255) DEFAULT NULL,
  order_no VARCHAR(255) DEFAULT NULL,
  message VARCHAR(4000) DEFAULT NULL,
  name01 VARCHAR(255) NOT NULL,
  name02 VARCHAR(255) NOT NULL,
  kana01 VARCHAR(255) DEFAULT NULL,
  kana02 VARCHAR(255) DEFAULT NULL,
  company_name VARCHAR(255) DEFAULT NULL,
  email VARCHAR(255) DEFAULT NULL,
  phone_number VARCHAR(14) DEFAULT NULL,
  postal_code VARCHAR(8) DEFAULT NULL,
  addr01 VARCHAR(255) DEFAULT NULL,
  addr02 VARCHAR(255) DEFAULT NULL,
  birth TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  subtotal NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  discount NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  delivery_fee_total NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  charge NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  tax NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  total NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  payment_total NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  payment_method VARCHAR(255) DEFAULT NULL,
  note VARCHAR(4000) DEFAULT NULL,
  create_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  update_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  order_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  payment_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  currency_code VARCHAR(255) DEFAULT NULL,
  complete_message TEXT DEFAULT NULL,
  complete_mail_message TEXT DEFAULT NULL,
  add_point NUMERIC(12, 0) DEFAULT 0 NOT NULL,
  use_point NUMERIC(12, 0) DEFAULT 0 NOT NULL,
  customer_id INT DEFAULT NULL,
  country_id SMALLINT DEFAULT NULL,
  pref_id SMALLINT DEFAULT NULL,
  sex_id SMALLINT DEFAULT NULL,
  job_id SMALLINT DEFAULT NULL,
  payment_id INT DEFAULT NULL,
  device_type_id SMALLINT DEFAULT NULL,
  order_status_id SMALLINT DEFAULT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE INDEX IDX_1D66D8079395C3F3 ON dtb_order (customer_id);
CREATE INDEX IDX_1D66D807F92F3E70 ON dtb_order (country_id);
CREATE INDEX IDX_1D66D807E171EF5F ON dtb_order (pref_id);
CREATE INDEX IDX_1D66D8075A2DB2A0 ON dtb_order (sex_id);
CREATE INDEX IDX_1D66D807BE04EA9 ON dtb_order (job_id);
CREATE INDEX IDX_1D66D8074C3A3BB ON dtb_order (payment_id);
CREATE INDEX IDX_1D66D8074FFA550E ON dtb_order (device_type_id);
CREATE INDEX IDX_1D66D807D7707B45 ON dtb_order (order_status_id);
CREATE UNIQUE INDEX dtb_order_pre_order_id_idx ON dtb_order (pre_order_id);
CREATE INDEX dtb_order_email_idx ON dtb_order (email);
CREATE INDEX dtb_order_order_date_idx ON dtb_order (order_date);
CREATE INDEX dtb_order_payment_date_idx ON dtb_order (payment_date);
CREATE INDEX dtb_order_update_date_idx ON dtb_order (update_date);
CREATE INDEX dtb_order_order_no_idx ON dtb_order (order_no);
CREATE TABLE dtb_order_item (
  id SERIAL NOT NULL,
  product_name VARCHAR(255) NOT NULL,
  product_code VARCHAR(255) DEFAULT NULL,
  class_name1 VARCHAR(255) DEFAULT NULL,
  class_name2 VARCHAR(255) DEFAULT NULL,
  class_category_name1 VARCHAR(255) DEFAULT NULL,
  class_category_name2 VARCHAR(255) DEFAULT NULL,
  price NUMERIC(12, 2) DEFAULT 0 NOT NULL,
  quantity NUMERIC(10, 0) DEFAULT 0 NOT NULL,
  tax NUMERIC(10, 0) DEFAULT 0 NOT NULL,
  tax_rate NUMERIC(10, 0) DEFAULT 0 NOT NULL,
  tax_adjust NUMERIC(10, 0) DEFAULT 0 NOT NULL,
  tax_rule_id SMALLINT DEFAULT NULL,
  currency_code VARCHAR(255) DEFAULT NULL,
  processor_name VARCHAR(255) DEFAULT NULL,
  point_rate NUMERIC(10, 0) DEFAULT NULL,
  order_id INT DEFAULT NULL,
  product_id INT DEFAULT NULL,
  product_class_id INT DEFAULT NULL,
  shipping_id INT DEFAULT NULL,
  rounding_type_id SMALLINT DEFAULT NULL,
  tax_type_id SMALLINT DEFAULT NULL,
  tax_display_type_id SMALLINT DEFAULT NULL,
  order_item_type_id SMALLINT DEFAULT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE INDEX IDX_A0C8C3ED8D9F6D38 ON dtb_order_item (order_id);
CREATE INDEX IDX_A0C8C3ED4584665A ON dtb_order_item (product_id);
CREATE INDEX IDX_A0C8C3ED21B06187 ON dtb_order_item (product_class_id);
CREATE INDEX IDX_A0C8C3ED4887F3F8 ON dtb_order_item (shipping_id);
CREATE INDEX IDX_A0C8C3ED1BD5C574 ON dtb_order_item (rounding_type_id);
CREATE INDEX IDX_A0C8C3ED84042C99 ON dtb_order_item (tax_type_id);
CREATE INDEX IDX_A0C8C3EDA2505856 ON dtb_order_item (tax_display_type_id);
CREATE INDEX IDX_A0C8C3EDCAD13EAD ON dtb_order_item (order_item_type_id);
CREATE TABLE dtb_shipping (
  id SERIAL NOT NULL,
  name01 VARCHAR(255) NOT NULL,
  name02 VARCHAR(255) NOT NULL,
  kana01 VARCHAR(255) DEFAULT NULL,
  kana02 VARCHAR(255) DEFAULT NULL,
  company_name VARCHAR(255) DEFAULT NULL,
  phone_number VARCHAR(14) DEFAULT NULL,
  postal_code VARCHAR(8) DEFAULT NULL,
  addr01 VARCHAR(255) DEFAULT NULL,
  addr02 VARCHAR(255) DEFAULT NULL,
  delivery_name VARCHAR(255) DEFAULT NULL,
  time_id INT DEFAULT NULL,
  delivery_time VARCHAR(255) DEFAULT NULL,
  delivery_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  shipping_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  tracking_number VARCHAR(255) DEFAULT NULL,
  note VARCHAR(4000) DEFAULT NULL,
  sort_no SMALLINT DEFAULT NULL,
  create_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  update_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  mail_send_date TIMESTAMP(0) WITH TIME ZONE DEFAULT NULL,
  order_id INT DEFAULT NULL,
  country_id SMALLINT DEFAULT NULL,
  pref_id SMALLINT DEFAULT NULL,
  delivery_id INT DEFAULT NULL,
  creator_id INT DEFAULT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE INDEX IDX_2EBD22CE8D9F6D38 ON dtb_shipping (order_id);
CREATE INDEX IDX_2EBD22CEF92F3E70 ON dtb_shipping (country_id);
CREATE INDEX IDX_2EBD22CEE171EF5F ON dtb_shipping (pref_id);
CREATE INDEX IDX_2EBD22CE12136921 ON dtb_shipping (delivery_id);
CREATE INDEX IDX_2EBD22CE61220EA6 ON dtb_shipping (creator_id);
CREATE TABLE dtb_product (
  id SERIAL NOT NULL,
  name VARCHAR(255) NOT NULL,
  note TEXT DEFAULT NULL,
  description_list TEXT DEFAULT NULL,
  description_detail TEXT DEFAULT NULL,
  search_word TEXT DEFAULT NULL,
  free_area TEXT DEFAULT NULL,
  create_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  update_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  creator_id INT DEFAULT NULL,
  product_status_id SMALLINT DEFAULT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE INDEX IDX_C49DE22F61220EA6 ON dtb_product (creator_id);
CREATE INDEX IDX_C49DE22F557B630 ON dtb_product (product_status_id);
CREATE TABLE dtb_product_class (
  id SERIAL NOT NULL,
  product_code VARCHAR(255) DEFAULT NULL,
  stock NUMERIC(10, 0) DEFAULT NULL,
  stock_unlimited BOOLEAN DEFAULT false NOT NULL,
  sale_limit NUMERIC(10, 0) DEFAULT NULL,
  price01 NUMERIC(12, 2) DEFAULT NULL,
  price02 NUMERIC(12, 2) NOT NULL,
  delivery_fee NUMERIC(12, 2) DEFAULT NULL,
  visible BOOLEAN DEFAULT true NOT NULL,
  create_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  update_date TIMESTAMP(0) WITH TIME ZONE NOT NULL,
  currency_code VARCHAR(255) DEFAULT NULL,
  point_rate NUMERIC(10, 0) DEFAULT NULL,
  product_id INT DEFAULT NULL,
  sale_type_id SMALLINT DEFAULT NULL,
  class_category_id1 INT DEFAULT NULL,
  class_category_id2 INT DEFAULT NULL,
  delivery_duration_id INT DEFAULT NULL,
  creator_id INT DEFAULT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE INDEX IDX_1A11D1BA4584665A ON dtb_product_class (product_id);
CREATE INDEX IDX_1A11D1BAB0524E01 ON dtb_product_class (sale_type_id);
CREATE INDEX IDX_1A11D1BA248D128 ON dtb_product_class (class_category_id1);
CREATE INDEX IDX_1A11D1BA9B418092 ON dtb_product_class (class_category_id2);
CREATE INDEX IDX_1A11D1BABA4269E ON dtb_product_class (delivery_duration_id);
CREATE INDEX IDX_1A11D1BA61220EA6 ON dtb_product_class (creator_id);
CREATE INDEX dtb_product_class_price02_idx ON dtb_product_class (price02);
CREATE INDEX dtb_product_class_stock_stock_unlimited_idx ON dtb_product_class (stock, stock_unlimited);
CREATE TABLE mtb_order_status (
  id SMALLINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  sort_no SMALLINT NOT NULL,
  display_order_count BOOLEAN DEFAULT false NOT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE TABLE mtb_sex (
  id SMALLINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  sort_no SMALLINT NOT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE TABLE mtb_pref (
  id SMALLINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  sort_no SMALLINT NOT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE TABLE mtb_customer_status (
  id SMALLINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  sort_no SMALLINT NOT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE TABLE mtb_order_item_type (
  id SMALLINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  sort_no SMALLINT NOT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);
CREATE TABLE mtb_tax_display_type (
  id SMALLINT NOT NULL,
  name VARCHAR(255) NOT NULL,
  sort_no SMALLINT NOT NULL,
  discriminator_type VARCHAR(255) NOT NULL,
  PRIMARY KEY(id)
);

ALTER TABLE dtb_customer ADD CONSTRAINT FK_8298BBE3C00AF8A7 FOREIGN KEY (customer_status_id) REFERENCES mtb_customer_status (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_customer ADD CONSTRAINT FK_8298BBE35A2DB2A0 FOREIGN KEY (sex_id) REFERENCES mtb_sex (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_customer.job_id references Job, a table kizuna does not read: no constraint here
-- dtb_customer.country_id references Country, a table kizuna does not read: no constraint here
ALTER TABLE dtb_customer ADD CONSTRAINT FK_8298BBE3E171EF5F FOREIGN KEY (pref_id) REFERENCES mtb_pref (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order ADD CONSTRAINT FK_1D66D8079395C3F3 FOREIGN KEY (customer_id) REFERENCES dtb_customer (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_order.country_id references Country, a table kizuna does not read: no constraint here
ALTER TABLE dtb_order ADD CONSTRAINT FK_1D66D807E171EF5F FOREIGN KEY (pref_id) REFERENCES mtb_pref (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order ADD CONSTRAINT FK_1D66D8075A2DB2A0 FOREIGN KEY (sex_id) REFERENCES mtb_sex (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_order.job_id references Job, a table kizuna does not read: no constraint here
-- dtb_order.payment_id references Payment, a table kizuna does not read: no constraint here
-- dtb_order.device_type_id references DeviceType, a table kizuna does not read: no constraint here
-- dtb_order.order_status_id references CustomerOrderStatus, a table kizuna does not read: no constraint here
-- dtb_order.order_status_id references OrderStatusColor, a table kizuna does not read: no constraint here
ALTER TABLE dtb_order ADD CONSTRAINT FK_1D66D807D7707B45 FOREIGN KEY (order_status_id) REFERENCES mtb_order_status (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order_item ADD CONSTRAINT FK_A0C8C3ED8D9F6D38 FOREIGN KEY (order_id) REFERENCES dtb_order (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order_item ADD CONSTRAINT FK_A0C8C3ED4584665A FOREIGN KEY (product_id) REFERENCES dtb_product (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order_item ADD CONSTRAINT FK_A0C8C3ED21B06187 FOREIGN KEY (product_class_id) REFERENCES dtb_product_class (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order_item ADD CONSTRAINT FK_A0C8C3ED4887F3F8 FOREIGN KEY (shipping_id) REFERENCES dtb_shipping (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_order_item.rounding_type_id references RoundingType, a table kizuna does not read: no constraint here
-- dtb_order_item.tax_type_id references TaxType, a table kizuna does not read: no constraint here
ALTER TABLE dtb_order_item ADD CONSTRAINT FK_A0C8C3EDA2505856 FOREIGN KEY (tax_display_type_id) REFERENCES mtb_tax_display_type (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_order_item ADD CONSTRAINT FK_A0C8C3EDCAD13EAD FOREIGN KEY (order_item_type_id) REFERENCES mtb_order_item_type (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE dtb_shipping ADD CONSTRAINT FK_2EBD22CE8D9F6D38 FOREIGN KEY (order_id) REFERENCES dtb_order (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_shipping.country_id references Country, a table kizuna does not read: no constraint here
ALTER TABLE dtb_shipping ADD CONSTRAINT FK_2EBD22CEE171EF5F FOREIGN KEY (pref_id) REFERENCES mtb_pref (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_shipping.delivery_id references Delivery, a table kizuna does not read: no constraint here
-- dtb_shipping.creator_id references Member, a table kizuna does not read: no constraint here
-- dtb_product.creator_id references Member, a table kizuna does not read: no constraint here
-- dtb_product.product_status_id references ProductStatus, a table kizuna does not read: no constraint here
ALTER TABLE dtb_product_class ADD CONSTRAINT FK_1A11D1BA4584665A FOREIGN KEY (product_id) REFERENCES dtb_product (id) NOT DEFERRABLE INITIALLY IMMEDIATE;
-- dtb_product_class.sale_type_id references SaleType, a table kizuna does not read: no constraint here
-- dtb_product_class.class_category_id1 references ClassCategory, a table kizuna does not read: no constraint here
-- dtb_product_class.class_category_id2 references ClassCategory, a table kizuna does not read: no constraint here
-- dtb_product_class.delivery_duration_id references DeliveryDuration, a table kizuna does not read: no constraint here
-- dtb_product_class.creator_id references Member, a table kizuna does not read: no constraint here

-- Master data (import_csv/ja).
INSERT INTO mtb_customer_status (id, name, sort_no, discriminator_type) VALUES
  (1, '仮会員', 0, 'customerstatus'),
  (2, '本会員', 1, 'customerstatus'),
  (3, '退会', 2, 'customerstatus');
INSERT INTO mtb_order_item_type (id, name, sort_no, discriminator_type) VALUES
  (1, '商品', 0, 'orderitemtype'),
  (2, '送料', 1, 'orderitemtype'),
  (3, '手数料', 2, 'orderitemtype'),
  (4, '割引', 3, 'orderitemtype'),
  (5, '税', 4, 'orderitemtype'),
  (6, 'ポイント', 5, 'orderitemtype');
INSERT INTO mtb_order_status (id, name, sort_no, display_order_count, discriminator_type) VALUES
  (1, '新規受付', 0, true, 'orderstatus'),
  (3, '注文取消し', 3, false, 'orderstatus'),
  (4, '対応中', 2, true, 'orderstatus'),
  (5, '発送済み', 4, false, 'orderstatus'),
  (6, '入金済み', 1, true, 'orderstatus'),
  (7, '決済処理中', 6, false, 'orderstatus'),
  (8, '購入処理中', 5, false, 'orderstatus'),
  (9, '返品', 7, false, 'orderstatus');
INSERT INTO mtb_pref (id, name, sort_no, discriminator_type) VALUES
  (1, '北海道', 1, 'pref'),
  (2, '青森県', 2, 'pref'),
  (3, '岩手県', 3, 'pref'),
  (4, '宮城県', 4, 'pref'),
  (5, '秋田県', 5, 'pref'),
  (6, '山形県', 6, 'pref'),
  (7, '福島県', 7, 'pref'),
  (8, '茨城県', 8, 'pref'),
  (9, '栃木県', 9, 'pref'),
  (10, '群馬県', 10, 'pref'),
  (11, '埼玉県', 11, 'pref'),
  (12, '千葉県', 12, 'pref'),
  (13, '東京都', 13, 'pref'),
  (14, '神奈川県', 14, 'pref'),
  (15, '新潟県', 15, 'pref'),
  (16, '富山県', 16, 'pref'),
  (17, '石川県', 17, 'pref'),
  (18, '福井県', 18, 'pref'),
  (19, '山梨県', 19, 'pref'),
  (20, '長野県', 20, 'pref'),
  (21, '岐阜県', 21, 'pref'),
  (22, '静岡県', 22, 'pref'),
  (23, '愛知県', 23, 'pref'),
  (24, '三重県', 24, 'pref'),
  (25, '滋賀県', 25, 'pref'),
  (26, '京都府', 26, 'pref'),
  (27, '大阪府', 27, 'pref'),
  (28, '兵庫県', 28, 'pref'),
  (29, '奈良県', 29, 'pref'),
  (30, '和歌山県', 30, 'pref'),
  (31, '鳥取県', 31, 'pref'),
  (32, '島根県', 32, 'pref'),
  (33, '岡山県', 33, 'pref'),
  (34, '広島県', 34, 'pref'),
  (35, '山口県', 35, 'pref'),
  (36, '徳島県', 36, 'pref'),
  (37, '香川県', 37, 'pref'),
  (38, '愛媛県', 38, 'pref'),
  (39, '高知県', 39, 'pref'),
  (40, '福岡県', 40, 'pref'),
  (41, '佐賀県', 41, 'pref'),
  (42, '長崎県', 42, 'pref'),
  (43, '熊本県', 43, 'pref'),
  (44, '大分県', 44, 'pref'),
  (45, '宮崎県', 45, 'pref'),
  (46, '鹿児島県', 46, 'pref'),
  (47, '沖縄県', 47, 'pref');
INSERT INTO mtb_sex (id, name, sort_no, discriminator_type) VALUES
  (1, '男性', 0, 'sex'),
  (2, '女性', 1, 'sex'),
  (3, 'その他', 2, 'sex'),
  (4, '回答しない', 3, 'sex');
INSERT INTO mtb_tax_display_type (id, name, sort_no, discriminator_type) VALUES
  (1, '税抜', 0, 'taxdisplaytype'),
  (2, '税込', 1, 'taxdisplaytype');
