"""Small configurators. Each is `configure_x(inputs, domain) -> None`: it appends the
elements for one concern to the `<domain>` element (devices go into `<devices>`).
The builder calls them in a fixed order and then puts children in libvirt's canonical
order, so a configurator never needs to know where its elements go."""
