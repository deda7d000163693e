"""GIS in and out: building a city package from real data (OSM, GeoPackage, Shapefile, GeoJSON, DEM) and
reading it back for ``citytwin city info``. Sits on :mod:`twin.core`; models add their part of the import
through their own declarations."""
