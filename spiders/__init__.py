"""Scrapy spiders: each turns one kind of public page into ``MentionRecord`` items, nothing more."""
