"""`KIZUNA_SOURCE=ec_cube`: an EC-CUBE 4.2/4.3 shop's own database, read read-only (docs/sources/ec_cube.md).

`source.EcCubeSource` pulls what changed since its cursor and writes it as kizuna's export format;
`demo` turns a generated shop into EC-CUBE rows; `pg_cluster` runs a throwaway PostgreSQL for both.
"""

from connectors.sources.ec_cube.source import EcCubeSource, source_from_settings

__all__ = ["EcCubeSource", "source_from_settings"]
