"""The SpRAy explorer: a local web page (:mod:`lumos.explorer.server`) or one static page
(:mod:`lumos.explorer.static`) over a store directory's analyses (:mod:`lumos.explorer.data`).
"""
