"""Email service providers: their webhooks in (``adieu.esp.hooks``, ``POST
/hooks/{provider}``) and Adieu's decisions out to their suppression lists."""
