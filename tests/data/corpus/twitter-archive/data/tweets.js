window.YTD.tweets.part0 = [
  {
    "tweet" : {
      "edit_info" : {
        "initial" : {
          "editTweetIds" : [ "1626900000000000001" ],
          "editableUntil" : "2023-02-18T13:03:11.000Z",
          "editsRemaining" : "5",
          "isEditEligible" : true
        }
      },
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ { "text" : "Frankenstein", "indices" : [ "61", "74" ] } ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [
          {
            "url" : "https://t.co/AbCdEfGh12",
            "expanded_url" : "https://example.org/chapter-4",
            "display_url" : "example.org/chapter-4",
            "indices" : [ "75", "98" ]
          }
        ]
      },
      "display_text_range" : [ "0", "98" ],
      "favorite_count" : "12",
      "id_str" : "1626900000000000001",
      "truncated" : false,
      "retweet_count" : "3",
      "id" : "1626900000000000001",
      "created_at" : "Sat Feb 18 12:33:11 +0000 2023",
      "favorited" : false,
      "full_text" : "Beware; for I am fearless, and therefore powerful &amp; free. #Frankenstein https://t.co/AbCdEfGh12",
      "lang" : "en"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"http://twitter.com/download/android\" rel=\"nofollow\">Twitter for Android</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [
          { "name" : "Percy", "screen_name" : "pbshelley", "indices" : [ "3", "13" ], "id_str" : "2929292929", "id" : "2929292929" }
        ],
        "urls" : [ ]
      },
      "display_text_range" : [ "0", "80" ],
      "favorite_count" : "0",
      "id_str" : "1626900000000000002",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1626900000000000002",
      "created_at" : "Sun Feb 19 08:00:00 +0000 2023",
      "favorited" : false,
      "full_text" : "RT @pbshelley: I met a traveller from an antique land, who said: two vast legs",
      "lang" : "en"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [
          { "name" : "Percy", "screen_name" : "pbshelley", "indices" : [ "0", "10" ], "id_str" : "2929292929", "id" : "2929292929" }
        ],
        "urls" : [ ]
      },
      "display_text_range" : [ "0", "55" ],
      "favorite_count" : "1",
      "in_reply_to_status_id_str" : "1626899999999999999",
      "id_str" : "1626900000000000003",
      "in_reply_to_user_id" : "2929292929",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1626900000000000003",
      "in_reply_to_status_id" : "1626899999999999999",
      "created_at" : "Sun Feb 19 09:10:00 +0000 2023",
      "favorited" : false,
      "full_text" : "@pbshelley The ruins are lovely, but come home for tea.",
      "lang" : "en",
      "in_reply_to_screen_name" : "pbshelley",
      "in_reply_to_user_id_str" : "2929292929"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [ ]
      },
      "display_text_range" : [ "0", "88" ],
      "favorite_count" : "4",
      "in_reply_to_status_id_str" : "1626900000000000001",
      "id_str" : "1626900000000000004",
      "in_reply_to_user_id" : "1818181818",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1626900000000000004",
      "in_reply_to_status_id" : "1626900000000000001",
      "created_at" : "Sun Feb 19 10:00:00 +0000 2023",
      "favorited" : false,
      "full_text" : "Nothing is so painful to the human mind as a great and sudden change.",
      "lang" : "en",
      "in_reply_to_screen_name" : "mshelley",
      "in_reply_to_user_id_str" : "1818181818"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [ ],
        "media" : [
          {
            "expanded_url" : "https://twitter.com/mshelley/status/1626900000000000005/photo/1",
            "indices" : [ "40", "63" ],
            "url" : "https://t.co/MeDiA12345",
            "media_url" : "http://pbs.twimg.com/media/FpQrStUvWxYz.jpg",
            "id_str" : "1626900000000000099",
            "id" : "1626900000000000099",
            "media_url_https" : "https://pbs.twimg.com/media/FpQrStUvWxYz.jpg",
            "sizes" : { "large" : { "w" : "1024", "h" : "768", "resize" : "fit" } },
            "type" : "photo",
            "display_url" : "pic.twitter.com/MeDiA12345"
          }
        ]
      },
      "display_text_range" : [ "0", "39" ],
      "favorite_count" : "7",
      "id_str" : "1626900000000000005",
      "truncated" : false,
      "possibly_sensitive" : false,
      "retweet_count" : "1",
      "id" : "1626900000000000005",
      "created_at" : "Mon Feb 20 18:45:00 +0000 2023",
      "favorited" : false,
      "full_text" : "The lake at Geneva, this evening &lt;3 https://t.co/MeDiA12345",
      "lang" : "en"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [ ]
      },
      "display_text_range" : [ "0", "60" ],
      "favorite_count" : "2",
      "id_str" : "1626900000000000006",
      "truncated" : false,
      "possibly_sensitive" : true,
      "retweet_count" : "0",
      "id" : "1626900000000000006",
      "created_at" : "Tue Feb 21 22:00:00 +0000 2023",
      "favorited" : false,
      "full_text" : "I beheld the wretch, the miserable monster whom I had created.",
      "lang" : "en"
    }
  }
]
