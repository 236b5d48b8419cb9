-- The account a code was sent for (the claimant of a binding, the account
-- being authenticated; none for a registration). Wrong answers in a row
-- are counted per account too, in otp_phone_guards under the key
-- `account:<user id>` (its phone_index column holds any guard's key, as
-- otp_sends does): a binding's code goes to the bank's phone, so the
-- phone's count alone would let one account fail codes sent to many phones.
ALTER TABLE otp_challenges ADD COLUMN account_id TEXT;
