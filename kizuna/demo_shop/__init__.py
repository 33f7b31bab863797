"""A synthetic single-product repeat shop, written as the cart system's nightly CSV exports."""

from kizuna.demo_shop.generator import GENERATOR_VERSION, ShopSummary, generate_shop

__all__ = ["GENERATOR_VERSION", "ShopSummary", "generate_shop"]
