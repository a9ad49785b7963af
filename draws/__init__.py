"""DRAWS mockup: a model of ALMA's Data Reduction Workflow System.

Actors talk only through a message bus and tables kept in CouchDB; this
package is the small library they share.
"""

__version__ = "0.1.0"
