"""Agencies: municipalities and their legal entities, with their online-payment settings."""
