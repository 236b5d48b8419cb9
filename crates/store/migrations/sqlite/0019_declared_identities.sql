-- A real-name identity the account's owner typed in is self-declared: its
-- blind index lives here, outside the unique `id_number_index`, so it never
-- blocks the person's bank-attested identity on another account, and the
-- bank's account look-up does not match it. A bank attesting the same
-- identity moves it to `id_number_index`.
ALTER TABLE wallet_users ADD COLUMN declared_id_number_index TEXT;
