"""Loopback twins of the providers: real HTTP servers on 127.0.0.1 that speak SendGrid's,
LINE's, Twilio's and Shopify's APIs closely enough to catch real mistakes, with programmable
faults. Used by the tests, the demo and the throughput bench; never bound to any other address."""

from connectors.channels.loopback.line import LineLoopback
from connectors.channels.loopback.sendgrid import SendGridLoopback
from connectors.channels.loopback.server import Fault, LoopbackServer
from connectors.channels.loopback.shopify import ShopifyLoopback
from connectors.channels.loopback.twilio_sms import TwilioLoopback

__all__ = ["Fault", "LineLoopback", "LoopbackServer", "SendGridLoopback", "ShopifyLoopback", "TwilioLoopback"]
