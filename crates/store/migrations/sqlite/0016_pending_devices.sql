-- A device seen for the first time by a security authentication is pending
-- until the authentication passes: it is held here, not in `devices`, so it
-- is never an account's device (no login, no payment request, no place
-- under the device cap) and it expires with the authentication. Passing
-- writes it to `devices` as an active, trusted device.
ALTER TABLE security_auths ADD COLUMN new_device_type TEXT;
ALTER TABLE security_auths ADD COLUMN new_device_name TEXT;
ALTER TABLE security_auths ADD COLUMN new_device_key TEXT;
ALTER TABLE security_auths ADD COLUMN new_device_thumbprint TEXT;
