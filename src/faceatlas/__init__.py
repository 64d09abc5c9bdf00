"""faceatlas"""
