-- The column EC-CUBE's official mail magazine plugin (メルマガ管理プラグイン, MailMagazine42 4.2.3, the
-- EC-CUBE/mail-magazine-plugin repository, branch 4.2, commit d65ca55) adds to dtb_customer when it is
-- installed: Entity/CustomerTrait.php maps `mailmaga_flg` to the column `plg_mailmagazine_flg`
-- (smallint, nullable, default 0; 1 = the member asked for the mail magazine). Doctrine DBAL 3 on PostgreSQL.
ALTER TABLE dtb_customer ADD plg_mailmagazine_flg SMALLINT DEFAULT 0;
